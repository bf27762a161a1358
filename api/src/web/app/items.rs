//! The sender's items: the list, one item with its state, place, door,
//! deadlines and charges, and what a sender does to a reservation: open its
//! door at the locker (the app's drop-off) or cancel it. Another sender's
//! item is a 404 page, as in the JSON API.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use lockers_core::billing::{self, Accrued, Tariffs};
use lockers_core::exchange::deposit::{self, CancelError, DropoffError};
use lockers_core::exchange::items::{self, ItemStatus, Listed, mask_email, mask_phone};
use minijinja::{Value, context};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::refusal::{self, Refusal};
use super::shown::{maybe_when, offset, page_number, pages, when};
use crate::ApiContext;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleUser;
use crate::web::{Page, WebError};

const PER_PAGE: u32 = 20;

/// An item as its sender's pages show it; the receiver's contact masked.
pub struct ShownItem(Value);

impl ShownItem {
    fn new(listed: Listed, accrued: Option<&Accrued>) -> Self {
        let Listed { item, point_name, point_address } = listed;
        let receiver = [item.receiver_phone.as_deref().map(mask_phone), item.receiver_email.as_deref().map(mask_email)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        let reserved = item.status == ItemStatus::Reserved;
        // The next deadline that matters in this state, for the list.
        let deadline = match item.status {
            ItemStatus::Reserved => Some(item.dropoff_by),
            ItemStatus::Stored => item.pickup_by,
            ItemStatus::Expired => item.return_by,
            _ => None,
        };
        Self(context! {
            id => item.id.to_string(),
            name => item.name,
            status => item.status.as_str(),
            point_name,
            point_address,
            door_no => item.door_no,
            receiver,
            reserved_at => when(item.reserved_at),
            dropoff_by => when(item.dropoff_by),
            stored_at => maybe_when(item.stored_at),
            pickup_by => maybe_when(item.pickup_by),
            return_by => maybe_when(item.return_by),
            closed_at => maybe_when(item.closed_at),
            deadline => maybe_when(deadline),
            amount => accrued.map(|a| a.amount.to_string()),
            hours => accrued.map_or(0, |a| a.hours),
            settled => accrued.is_some_and(|a| a.settled),
            // Reserved and in time: the door may be asked to open (again: the same door answers).
            can_open => reserved && item.dropoff_by > Utc::now(),
            // Reserved and the door never asked to open.
            can_cancel => reserved && item.dropoff_requested_at.is_none(),
        })
    }

    /// `sender_id`'s item `id` with its charges so far; anyone else's is not found.
    pub async fn load(ctx: &ApiContext, conn: &mut PgConnection, sender_id: Uuid, id: Uuid) -> Result<Self, WebError> {
        let listed =
            items::listed(conn, id).await?.filter(|l| l.item.sender_id == sender_id).ok_or_else(WebError::not_found)?;
        let amounts = amounts_of(ctx, conn, std::slice::from_ref(&listed)).await?;
        Ok(Self::new(listed, amounts.first()))
    }
}

/// The amounts so far of some items (two queries whatever their number).
async fn amounts_of(ctx: &ApiContext, conn: &mut PgConnection, rows: &[Listed]) -> Result<Vec<Accrued>, WebError> {
    let ids: Vec<Uuid> = rows.iter().map(|l| l.item.id).collect();
    Ok(billing::so_far(conn, &Tariffs::from_config(&ctx.config), &ids, Utc::now()).await?)
}

/// The item page, with `extra` (a drop-off code, a notice or an error) merged in.
pub fn item_page(page: &Page, status: StatusCode, item: &ShownItem, extra: Value) -> Response {
    page.render_status(status, "app/item.html", context! { item => item.0.clone(), ..extra })
}

fn item_id(raw: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(raw).map_err(|_| WebError::not_found())
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
    let mut conn = ctx.db.acquire().await?;
    let (rows, total) = items::list(&mut conn, Some(user.user.id), i64::from(PER_PAGE), offset(page, PER_PAGE)).await?;
    let amounts = amounts_of(&ctx, &mut conn, &rows).await?;
    let shown: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let accrued = amounts.iter().find(|a| a.item_id == row.item.id);
            ShownItem::new(row, accrued).0
        })
        .collect();
    let context = context! { items => shown, page, pages => pages(total, PER_PAGE) };
    Ok(user.page.render("app/items.html", context))
}

#[derive(Deserialize)]
pub struct ShowQuery {
    done: Option<String>,
}

pub async fn show(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let id = item_id(&id)?;
    let item = ShownItem::load(&ctx, &mut *ctx.db.acquire().await?, user.user.id, id).await?;
    let done = query.ok().and_then(|Query(q)| q.done).unwrap_or_default();
    let extra = context! { door_opening => done == "door", cancelled => done == "cancelled" };
    Ok(item_page(&user.page, StatusCode::OK, &item, extra))
}

/// The item page again, with a refusal on it.
async fn refused(ctx: &ApiContext, user: &ConsoleUser, id: Uuid, refusal: Refusal) -> Result<Response, WebError> {
    let item = ShownItem::load(ctx, &mut *ctx.db.acquire().await?, user.user.id, id).await?;
    Ok(item_page(&user.page, refusal.status, &item, context! { error => refusal.key }))
}

/// The sender at the locker: its door opens for the drop-off.
pub async fn drop_off(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = item_id(&id)?;
    let opened = deposit::drop_off(&mut *ctx.db.acquire().await?, &user.actor, ctx.deposit_rules(), id).await;
    match opened {
        Ok(_) => Ok(user.page.redirect(&format!("/app/items/{id}?done=door"))),
        Err(DropoffError::NotFound) => Err(WebError::not_found()),
        Err(e) => refused(&ctx, &user, id, refusal::drop_off(e)?).await,
    }
}

/// The sender cancels a reservation whose door never opened.
pub async fn cancel(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let id = item_id(&id)?;
    match deposit::cancel(&mut *ctx.db.acquire().await?, &user.actor, id).await {
        Ok(_) => Ok(user.page.redirect(&format!("/app/items/{id}?done=cancelled"))),
        Err(CancelError::NotFound) => Err(WebError::not_found()),
        Err(e) => refused(&ctx, &user, id, refusal::cancel(e)?).await,
    }
}
