//! `GET /me/transactions` and `GET /admin/transactions`: the billing ledger,
//! read back through `billing::ledger::list`. Amounts are integer paise with
//! their currency (and a display string), never floats.

use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use lockers_core::billing::ledger::{self, Entry, Filter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminUser, AuthUser, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(mine)).routes(routes!(all))
}

/// `from` inclusive, `to` exclusive, on when the transaction was written (RFC 3339).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MineQuery {
    /// From this time (RFC 3339), inclusive.
    from: Option<DateTime<Utc>>,
    /// Up to this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AllQuery {
    /// One sender's lines.
    user_id: Option<Uuid>,
    /// From this time (RFC 3339), inclusive.
    from: Option<DateTime<Utc>>,
    /// Up to this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

/// One line of the billing ledger: what one item cost when it was closed.
#[derive(Serialize, ToSchema)]
struct TransactionView {
    id: Uuid,
    item_id: Uuid,
    user_id: Uuid,
    amount_paise: i64,
    currency: String,
    /// `INR 50.00`, for showing as is.
    amount_display: String,
    hours: i32,
    created_at: DateTime<Utc>,
    item_name: String,
    locker_id: Uuid,
    door_no: i32,
    locker_size: String,
    point_id: Uuid,
    point_name: String,
}

impl From<Entry> for TransactionView {
    fn from(e: Entry) -> Self {
        Self {
            id: e.id,
            item_id: e.item_id,
            user_id: e.user_id,
            amount_paise: e.amount.minor,
            currency: e.amount.currency.to_string(),
            amount_display: e.amount.to_string(),
            hours: e.hours,
            created_at: e.created_at,
            item_name: e.item_name,
            locker_id: e.locker_id,
            door_no: e.door_no,
            locker_size: e.locker_size,
            point_id: e.point_id,
            point_name: e.point_name,
        }
    }
}

fn time_range(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<()> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => {
            Err(ApiError::bad_request("invalid_query", "`from` must not be after `to`"))
        }
        _ => Ok(()),
    }
}

async fn page_of(
    ctx: &ApiContext,
    filter: Filter,
    page: Option<u32>,
    per_page: Option<u32>,
) -> Result<AppJson<List<TransactionView>>> {
    let page = PageQuery::new(page, per_page).parse()?;
    time_range(filter.from, filter.to)?;
    let (items, total) = ledger::list(&mut *ctx.db.acquire().await?, &filter, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.into_iter().map(TransactionView::from).collect(), page, total)))
}

/// The caller's own transactions, newest first.
/// The caller's billing ledger, newest first.
#[utoipa::path(get, path = "/me/transactions", tag = "billing", params(MineQuery), security(("bearer" = []), ("oauth2" = [])),
    responses(
    (status = 200, body = List<TransactionView>),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
))]
async fn mine(
    State(ctx): State<ApiContext>,
    AuthUser(user): AuthUser,
    query: QueryOf<MineQuery>,
) -> Result<AppJson<List<TransactionView>>> {
    let Query(q) = query?;
    page_of(&ctx, Filter { user_id: Some(user.id), from: q.from, to: q.to }, q.page, q.per_page).await
}

/// Everyone's transactions, newest first, by user and time range.
/// Every ledger line, filterable by sender and time.
#[utoipa::path(get, path = "/admin/transactions", tag = "billing", params(AllQuery), security(("bearer" = []), ("oauth2" = [])),
    responses(
    (status = 200, body = List<TransactionView>),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
))]
async fn all(
    State(ctx): State<ApiContext>,
    _admin: AdminUser,
    query: QueryOf<AllQuery>,
) -> Result<AppJson<List<TransactionView>>> {
    let Query(q) = query?;
    page_of(&ctx, Filter { user_id: q.user_id, from: q.from, to: q.to }, q.page, q.per_page).await
}
