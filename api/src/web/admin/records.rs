//! `/admin/items` and `/admin/transactions`: every exchange and every bill,
//! filtered by state, locker point and date range, a page at a time
//! (`exchange::overview::items`, `billing::ledger::list_at`). Receivers'
//! contacts are masked as the JSON API masks them.

use axum::extract::{Query, State};
use axum::response::Response;
use lockers_core::billing::ledger::{self, Filter};
use lockers_core::exchange::items::{ItemStatus, mask_email, mask_phone};
use lockers_core::exchange::overview::{self, ItemFilter};
use lockers_core::places::overview::lockers_by_point;
use minijinja::{Value, context};

use super::listing::{self, Params};
use super::notice::Notice;
use crate::ApiContext;
use crate::pagination::Page;
use crate::web::WebError;
use crate::web::session::ConsoleAdmin;

/// Points offered in the filters' menu.
const POINTS_SHOWN: i64 = 200;

/// Every point (up to [`POINTS_SHOWN`]) for the filter menu.
async fn point_menu(conn: &mut sqlx::PgConnection) -> Result<Vec<Value>, WebError> {
    let (points, _) = lockers_by_point(conn, None, POINTS_SHOWN, 0).await?;
    Ok(points
        .iter()
        .map(|p| context! { id => p.point_id.to_string(), name => &p.point_name, city => &p.city_name })
        .collect())
}

/// The filters both lists share: point and days (`to` inclusive).
struct Common {
    page: Page,
    point_id: Option<uuid::Uuid>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
}

fn common(params: &Params) -> Result<Common, Notice> {
    let (from, to) = (listing::day(params, "from", 0)?, listing::day(params, "to", 1)?);
    listing::range(from, to)?;
    Ok(Common { page: listing::page(params)?, point_id: listing::id(params, "point_id")?, from, to })
}

fn unfiltered() -> Common {
    Common { page: listing::first_page(), point_id: None, from: None, to: None }
}

pub async fn items(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    let status = listing::field(&params, "status");
    let parsed = common(&params).and_then(|c| match status.map(ItemStatus::parse) {
        Some(None) => Err(Notice::refused(axum::http::StatusCode::BAD_REQUEST, "admin.err_bad_filter")),
        other => Ok((c, other.flatten())),
    });
    let ((filters, status), notice) = match parsed {
        Ok(parsed) => (parsed, Notice::None),
        Err(refused) => ((unfiltered(), None), refused),
    };
    let filter = ItemFilter { status, point_id: filters.point_id, from: filters.from, to: filters.to };
    let page = filters.page;
    let mut conn = ctx.db.acquire().await?;
    let (rows, total) = overview::items(&mut conn, &filter, page.limit(), page.offset()).await?;
    let items: Vec<_> = rows
        .iter()
        .map(|row| {
            let item = &row.item;
            let receiver = item
                .receiver_phone
                .as_deref()
                .map(mask_phone)
                .or_else(|| item.receiver_email.as_deref().map(mask_email))
                .unwrap_or_default();
            context! {
                id => item.id.to_string(), name => &item.name, status => item.status.as_str(),
                point => &row.point_name, point_id => item.point_id.to_string(), door => item.door_no,
                receiver => receiver, reserved_at => listing::when(item.reserved_at),
                stored_at => listing::when_opt(item.stored_at), closed_at => listing::when_opt(item.closed_at),
            }
        })
        .collect();
    let context = context! {
        section => "items",
        notice => notice.value(),
        items => items,
        statuses => ItemStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        points => point_menu(&mut conn).await?,
        filter => filter_value(&params),
        pager => listing::pager("/admin/items", &params, &["status", "point_id", "from", "to"], page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/items.html", context))
}

/// The filters as the form shows them back.
fn filter_value(params: &Params) -> Value {
    let get = |k: &str| listing::field(params, k).unwrap_or_default().to_owned();
    context! { status => get("status"), point_id => get("point_id"), from => get("from"), to => get("to") }
}

pub async fn transactions(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    let (filters, notice) = match common(&params) {
        Ok(filters) => (filters, Notice::None),
        Err(refused) => (unfiltered(), refused),
    };
    let page = filters.page;
    let filter = Filter { user_id: None, from: filters.from, to: filters.to };
    let mut conn = ctx.db.acquire().await?;
    let (entries, total) = ledger::list_at(&mut conn, &filter, filters.point_id, page.limit(), page.offset()).await?;
    let entries: Vec<_> = entries
        .iter()
        .map(|e| {
            context! {
                id => e.id.to_string(), item => &e.item_name, item_id => e.item_id.to_string(),
                amount => e.amount.to_string(), hours => e.hours, point => &e.point_name,
                point_id => e.point_id.to_string(), door => e.door_no, size => &e.locker_size,
                at => listing::when(e.created_at),
            }
        })
        .collect();
    let context = context! {
        section => "transactions",
        notice => notice.value(),
        entries => entries,
        points => point_menu(&mut conn).await?,
        filter => filter_value(&params),
        pager => listing::pager("/admin/transactions", &params, &["point_id", "from", "to"], page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/transactions.html", context))
}
