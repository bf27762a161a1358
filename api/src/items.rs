//! `/items`: deposit, drop-off, cancel, and the sender's (or an admin's) view
//! of items; `/locker-points/{id}/dropoff`: the drop-off code typed at the
//! point's screen. The rules are `lockers_core::exchange::deposit`'s.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lockers_core::accounts::contact::{Email, Phone};
use lockers_core::accounts::users::Role;

use lockers_core::billing::{self, Accrued, Money, Tariffs};
use lockers_core::exchange::deposit::{
    self, CancelError, DepositError, Description, DropoffError, ItemName, NewDeposit, Place, Receiver,
};
use lockers_core::exchange::items::{self, ItemStatus, Listed, mask_email, mask_phone};
use lockers_core::places::lockers::Size;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AuthUser, Caller, ClientIp, KioskPoint, PathId, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show))
        .routes(routes!(drop_off))
        .routes(routes!(cancel))
        .routes(routes!(drop_off_at_point))
}

impl From<DepositError> for ApiError {
    fn from(e: DepositError) -> Self {
        let message = e.to_string();
        match e {
            DepositError::NoSender => ApiError::Unauthorized,
            DepositError::EmailNotVerified => ApiError::Refused {
                code: "email_not_verified",
                message: "prove your email address before depositing: enter the code sent to it",
            },
            DepositError::TooManyReservations(_) => ApiError::conflict("too_many_reservations", message),
            DepositError::LockerNotFound => ApiError::unprocessable("locker_not_found", message),
            DepositError::PointNotFound => ApiError::unprocessable("point_not_found", message),
            DepositError::PointOffline => ApiError::conflict("point_offline", message),
            DepositError::LockerUnavailable => ApiError::conflict("locker_unavailable", message),
            DepositError::NoLockerAvailable => ApiError::conflict("no_locker_available", message),
            DepositError::Exchange(e) => e.into(),
        }
    }
}

impl From<DropoffError> for ApiError {
    fn from(e: DropoffError) -> Self {
        let message = e.to_string();
        match e {
            DropoffError::NotFound => ApiError::NotFound("item"),
            DropoffError::InvalidCode => ApiError::unprocessable("invalid_code", message),
            DropoffError::RateLimited(e) => e.into(),
            DropoffError::NotReserved => ApiError::conflict("item_not_reserved", message),
            DropoffError::DeadlinePassed => ApiError::conflict("dropoff_deadline_passed", message),
            DropoffError::PointOffline => ApiError::conflict("point_offline", message),
            DropoffError::Exchange(e) => e.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        let message = e.to_string();
        match e {
            CancelError::NotFound => ApiError::NotFound("item"),
            CancelError::NotReserved => ApiError::conflict("item_not_reserved", message),
            CancelError::DropoffStarted => ApiError::conflict("dropoff_started", message),
            CancelError::Exchange(e) => e.into(),
        }
    }
}

// Views ------------------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
struct LockerRef {
    id: Uuid,
    door_no: i32,
}

#[derive(Serialize, ToSchema)]
struct PointRef {
    id: Uuid,
    name: String,
    address: String,
}

/// An item as its sender (or an admin) sees it; the receiver's contact masked.
#[derive(Serialize, ToSchema)]
struct ItemView {
    id: Uuid,
    status: ItemStatus,
    name: String,
    description: Option<String>,
    sender_id: Uuid,
    receiver_phone: Option<String>,
    receiver_email: Option<String>,
    locker: LockerRef,
    point: PointRef,
    reserved_at: DateTime<Utc>,
    dropoff_by: DateTime<Utc>,
    dropoff_opened_at: Option<DateTime<Utc>>,
    stored_at: Option<DateTime<Utc>>,
    pickup_by: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
    /// The amount so far: every started hour since `stored_at` (zero before
    /// it), or the settled bill once billing closed (`amount_settled`).
    amount: Option<Money>,
    amount_hours: i64,
    amount_settled: bool,
}

impl ItemView {
    fn new(listed: Listed, accrued: Option<&Accrued>) -> Self {
        let Listed { item, point_name, point_address } = listed;
        Self {
            id: item.id,
            status: item.status,
            name: item.name,
            description: item.description,
            sender_id: item.sender_id,
            receiver_phone: item.receiver_phone.as_deref().map(mask_phone),
            receiver_email: item.receiver_email.as_deref().map(mask_email),
            locker: LockerRef { id: item.locker_id, door_no: item.door_no },
            point: PointRef { id: item.point_id, name: point_name, address: point_address },
            reserved_at: item.reserved_at,
            dropoff_by: item.dropoff_by,
            dropoff_opened_at: item.dropoff_opened_at,
            stored_at: item.stored_at,
            pickup_by: item.pickup_by,
            closed_at: item.closed_at,
            amount: accrued.map(|a| a.amount.clone()),
            amount_hours: accrued.map_or(0, |a| a.hours),
            amount_settled: accrued.is_some_and(|a| a.settled),
        }
    }
}

/// The amounts so far of a page of items, in one `billing::so_far` call
/// (two queries whatever the page size).
async fn amounts_of(ctx: &ApiContext, conn: &mut sqlx::PgConnection, rows: &[Listed]) -> Result<Vec<Accrued>> {
    let ids: Vec<Uuid> = rows.iter().map(|l| l.item.id).collect();
    Ok(billing::so_far(conn, &Tariffs::from_config(&ctx.config), &ids, Utc::now()).await?)
}

// Deposit ----------------------------------------------------------------------------

/// Either `locker_id`, or `point_id` and `size` (`allow_larger`: a larger free locker will do).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"point_id": "0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10", "size": "M", "name": "Birthday present",
    "receiver_phone": "+919812345678"}))]
struct DepositBody {
    locker_id: Option<Uuid>,
    point_id: Option<Uuid>,
    size: Option<Size>,
    allow_larger: Option<bool>,
    name: String,
    description: Option<String>,
    receiver_phone: Option<String>,
    receiver_email: Option<String>,
}

impl DepositBody {
    fn parse(self) -> Result<NewDeposit> {
        let place = match (self.locker_id, self.point_id, self.size) {
            (Some(id), None, None) if self.allow_larger.is_none() => Place::Locker(id),
            (None, Some(point_id), Some(size)) => {
                Place::Point { point_id, size, allow_larger: self.allow_larger.unwrap_or(false) }
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "place_required",
                    "give either `locker_id`, or `point_id` and `size` (with `allow_larger` if a larger one will do)",
                ));
            }
        };
        let name = ItemName::parse(&self.name)
            .ok_or_else(|| ApiError::unprocessable("invalid_name", "name must be 1 to 200 characters"))?;
        let description = match self.description.as_deref().map(Description::parse) {
            None => None,
            Some(Ok(d)) => d,
            Some(Err(_)) => {
                return Err(ApiError::unprocessable(
                    "invalid_description",
                    "description must be at most 2000 characters",
                ));
            }
        };
        let phone = match self.receiver_phone.as_deref().filter(|p| !p.trim().is_empty()) {
            None => None,
            Some(raw) => Some(Phone::parse(raw).map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?),
        };
        let email = match self.receiver_email.as_deref().filter(|e| !e.trim().is_empty()) {
            None => None,
            Some(raw) => Some(Email::parse(raw).map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?),
        };
        let receiver = Receiver::new(phone, email).ok_or_else(|| {
            ApiError::unprocessable("receiver_required", "give the receiver's phone (E.164) or email, or both")
        })?;
        Ok(NewDeposit { place, name, description, receiver })
    }
}

/// A reservation, with the code that opens its door at the point's screen.
#[derive(Serialize, ToSchema)]
struct Deposited {
    #[serde(flatten)]
    item: ItemView,
    /// Typed at the point's screen to open the door; valid until `dropoff_by`, once.
    dropoff_code: String,
}

/// `201` with the reserved item and its drop-off code; no door opens yet.
/// Reserves a locker for a deposit; no door opens yet.
#[utoipa::path(post, path = "/items", tag = "items", request_body = DepositBody, security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 201, description = "Reserved, with the drop-off code", body = Deposited),
    (status = 403, description = "`email_not_verified`", body = ErrorBody),
    (status = 409, description = "`too_many_reservations`, `point_offline`, `locker_unavailable`, `no_locker_available`",
        body = ErrorBody),
    (status = 422, description = "`place_required`, `invalid_name`, `invalid_description`, `invalid_phone`, \
        `invalid_email`, `receiver_required`, `locker_not_found`, `point_not_found`", body = ErrorBody),
))]
async fn create(
    State(ctx): State<ApiContext>,
    AuthUser(user): AuthUser,
    Caller(caller): Caller,
    AppJson(body): AppJson<DepositBody>,
) -> Result<(StatusCode, AppJson<Deposited>)> {
    let new = body.parse()?;
    let by = crate::extract::acting(caller, &user);
    let mut conn = ctx.db.acquire().await?;
    let (item, code) = deposit::reserve(&mut conn, &by, ctx.deposit_rules(), new).await?;
    let listed = items::listed(&mut conn, item.id).await?.ok_or(ApiError::NotFound("item"))?;
    let body = Deposited { item: ItemView::new(listed, None), dropoff_code: code.expose().to_owned() };
    Ok((StatusCode::CREATED, AppJson(body)))
}

// Reads ------------------------------------------------------------------------------

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Admins: one sender's items (others may only give their own id).
    sender_id: Option<Uuid>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

/// The caller's items, newest first; admins see everyone's, or one sender's with `?sender_id=`.
/// The caller's items (admins: everyone's, or one sender's), newest first.
#[utoipa::path(get, path = "/items", tag = "items", params(ListQuery), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = List<ItemView>),
    (status = 403, description = "`forbidden`: another sender's items", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
))]
async fn list(
    State(ctx): State<ApiContext>,
    AuthUser(user): AuthUser,
    query: QueryOf<ListQuery>,
) -> Result<AppJson<List<ItemView>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let sender = match user.role {
        Role::Admin => q.sender_id,
        _ if q.sender_id.is_some_and(|s| s != user.id) => return Err(ApiError::Forbidden),
        _ => Some(user.id),
    };
    let mut conn = ctx.db.acquire().await?;
    let (rows, total) = items::list(&mut conn, sender, page.limit(), page.offset()).await?;
    let amounts = amounts_of(&ctx, &mut conn, &rows).await?;
    let views = rows
        .into_iter()
        .map(|row| {
            let accrued = amounts.iter().find(|a| a.item_id == row.item.id);
            ItemView::new(row, accrued)
        })
        .collect();
    Ok(AppJson(List::new(views, page, total)))
}

/// One item, for its sender or an admin; anyone else gets 404.
/// One of the caller's items (admins: any).
#[utoipa::path(get, path = "/items/{id}", tag = "items", params(("id" = Uuid, Path, description = "The item")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = ItemView),
    (status = 404, description = "`not_found`", body = ErrorBody),
))]
async fn show(State(ctx): State<ApiContext>, AuthUser(user): AuthUser, id: PathId) -> Result<AppJson<ItemView>> {
    let Path(id) = id?;
    let mut conn = ctx.db.acquire().await?;
    let listed = items::listed(&mut conn, id)
        .await?
        .filter(|l| user.role == Role::Admin || l.item.sender_id == user.id)
        .ok_or(ApiError::NotFound("item"))?;
    let amounts = amounts_of(&ctx, &mut conn, std::slice::from_ref(&listed)).await?;
    Ok(AppJson(ItemView::new(listed, amounts.first())))
}

// Drop-off and cancel ------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
struct DropoffView {
    item_id: Uuid,
    door_no: i32,
}

/// The sender, at the locker: its door opens (once; asking again answers the same door).
/// The sender, at the locker: opens the reserved door for the drop-off.
#[utoipa::path(post, path = "/items/{id}/dropoff", tag = "items", params(("id" = Uuid, Path, description = "The item")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, description = "The door is opening", body = DropoffView),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`item_not_reserved`, `dropoff_deadline_passed`, `point_offline`", body = ErrorBody),
))]
async fn drop_off(
    State(ctx): State<ApiContext>,
    AuthUser(user): AuthUser,
    Caller(caller): Caller,
    id: PathId,
) -> Result<AppJson<DropoffView>> {
    let Path(id) = id?;
    let by = crate::extract::acting(caller, &user);
    let done = deposit::drop_off(&mut *ctx.db.acquire().await?, &by, ctx.deposit_rules(), id).await?;
    Ok(AppJson(DropoffView { item_id: done.item_id, door_no: done.door_no }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "123456"}))]
struct CodeBody {
    code: String,
}

/// The drop-off code typed at the point's own screen: that door opens.
/// The point's screen: the drop-off code opens its reserved door.
#[utoipa::path(post, path = "/locker-points/{id}/dropoff", tag = "items", request_body = CodeBody, params(("id" = Uuid, Path, description = "The locker point")), security(("kiosk_token" = [])),
    responses(
    (status = 200, description = "The door is opening", body = DropoffView),
    (status = 403, description = "`wrong_point`: the screen belongs to another point", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`item_not_reserved`, `dropoff_deadline_passed`, `point_offline`", body = ErrorBody),
    (status = 422, description = "`invalid_code`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
))]
async fn drop_off_at_point(
    State(ctx): State<ApiContext>,
    kiosk: KioskPoint,
    Caller(caller): Caller,
    ip: ClientIp,
    id: PathId,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<DropoffView>> {
    let Path(point_id) = id?;
    kiosk.require(point_id)?;
    let mut conn = ctx.db.acquire().await?;
    let done =
        deposit::drop_off_by_code(&mut conn, &caller, ctx.deposit_rules(), point_id, &ip.key(), &body.code).await?;
    Ok(AppJson(DropoffView { item_id: done.item_id, door_no: done.door_no }))
}

/// The sender cancels a reservation whose door was never asked to open.
/// The sender cancels a reservation whose door has not opened.
#[utoipa::path(post, path = "/items/{id}/cancel", tag = "items", params(("id" = Uuid, Path, description = "The item")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = ItemView),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`item_not_reserved`, `dropoff_started`", body = ErrorBody),
))]
async fn cancel(
    State(ctx): State<ApiContext>,
    AuthUser(user): AuthUser,
    Caller(caller): Caller,
    id: PathId,
) -> Result<AppJson<ItemView>> {
    let Path(id) = id?;
    let by = crate::extract::acting(caller, &user);
    let mut conn = ctx.db.acquire().await?;
    let item = deposit::cancel(&mut conn, &by, id).await?;
    let listed = items::listed(&mut conn, item.id).await?.ok_or(ApiError::NotFound("item"))?;
    Ok(AppJson(ItemView::new(listed, None)))
}
