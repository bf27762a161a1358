//! Receipts: the sender's lines of the billing ledger, as
//! `GET /api/v1/me/transactions` reads them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use lockers_core::billing::ledger::{self, Entry, Filter};
use minijinja::{Value, context};
use serde::Deserialize;

use super::shown::{offset, page_number, pages, when};
use crate::ApiContext;
use crate::web::WebError;
use crate::web::session::ConsoleUser;

const PER_PAGE: u32 = 20;

fn receipt(e: Entry) -> Value {
    context! {
        at => when(e.created_at), amount => e.amount.to_string(), item_id => e.item_id.to_string(),
        item_name => e.item_name, point_name => e.point_name, door_no => e.door_no, size => e.locker_size,
        hours => e.hours,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    page: Option<String>,
}

pub async fn list(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let page = page_number(query.ok().and_then(|Query(q)| q.page).as_deref(), PER_PAGE);
    let filter = Filter { user_id: Some(user.user.id), from: None, to: None };
    let (entries, total) =
        ledger::list(&mut *ctx.db.acquire().await?, &filter, i64::from(PER_PAGE), offset(page, PER_PAGE)).await?;
    let receipts: Vec<Value> = entries.into_iter().map(receipt).collect();
    Ok(user.page.render("app/receipts.html", context! { receipts, page, pages => pages(total, PER_PAGE) }))
}
