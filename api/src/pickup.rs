//! Pickup and return: at a locker (anyone standing there: holding the code
//! is the proof) and at a locker point's screen (its kiosk credential). The
//! rules, limits and brute-force bounds: `lockers_core::exchange::collection`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use lockers_core::accounts::contact::Contact;
use lockers_core::exchange::collection::{CollectError, Opening, Place, RequestError};
use lockers_core::exchange::items::ItemStatus;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{Caller, KioskPoint, PathId};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(request_at_locker))
        .routes(routes!(collect_at_locker))
        .routes(routes!(request_at_point))
        .routes(routes!(collect_at_point))
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::RateLimited(e) => e.into(),
            RequestError::CountryNotAllowed => {
                Self::unprocessable("phone_country_not_allowed", "text messages cannot be sent to this country")
            }
            RequestError::Code(e) => e.into(),
            RequestError::Exchange(e) => e.into(),
        }
    }
}

impl From<CollectError> for ApiError {
    fn from(e: CollectError) -> Self {
        match e {
            CollectError::RateLimited(e) => e.into(),
            CollectError::InvalidCode => {
                Self::AuthFailed { code: "invalid_code", message: "the code is wrong, expired or already used" }
            }
            CollectError::ItemUnavailable => {
                Self::conflict("item_unavailable", "this item cannot be collected now; please contact support")
            }
            CollectError::PointOffline => Self::conflict(
                "point_offline",
                "the locker point is offline; your code is still good, try again in a few minutes",
            ),
            CollectError::Exchange(e) => e.into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contact": "+919812345678"}))]
struct ContactBody {
    /// The receiver's (or, for a return, the sender's) phone or email.
    contact: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "123456"}))]
struct CodeBody {
    code: String,
}

fn parse_contact(raw: &str) -> Result<Contact> {
    Contact::parse(raw).map_err(|e| ApiError::unprocessable("invalid_contact", e.to_string()))
}

/// The same answer whether or not anything waits for the contact.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "accepted", "message": "If something waits for this contact here, a code is on its way."}))]
struct PickupRequested {
    /// Always `accepted`.
    status: &'static str,
    message: &'static str,
}

fn accepted() -> (StatusCode, AppJson<PickupRequested>) {
    let body = PickupRequested {
        status: "accepted",
        message: "If something waits for this contact here, a code is on its way.",
    };
    (StatusCode::ACCEPTED, AppJson(body))
}

/// `opening: true`: the door command is issued; the item becomes
/// `collected` (`returned`) when the controller acknowledges the open.
/// A code that worked: the door is opening, and what the stay cost.
#[derive(Serialize, ToSchema)]
struct Opened {
    item_id: Uuid,
    /// `stored` (`expired` for a return) until the controller acknowledges the
    /// open, then `collected` (`returned`).
    status: ItemStatus,
    /// Always `true`: the door command is queued.
    opening: bool,
    command_id: Uuid,
    amount_paise: i64,
    currency: String,
    /// Started hours billed.
    hours: i32,
    /// At a point's screen: which door.
    #[serde(skip_serializing_if = "Option::is_none")]
    door_no: Option<i32>,
}

fn opened(opening: Opening, with_door: bool) -> AppJson<Opened> {
    AppJson(Opened {
        item_id: opening.item_id,
        status: opening.status,
        opening: true,
        command_id: opening.command_id,
        amount_paise: opening.amount.minor,
        currency: opening.amount.currency,
        hours: opening.hours,
        door_no: with_door.then_some(opening.door_no),
    })
}

/// Anyone at the locker: a code goes to the contact if an item waits for it there.
#[utoipa::path(post, path = "/lockers/{id}/pickup/request", tag = "pickup", request_body = ContactBody, params(("id" = Uuid, Path, description = "The locker")), responses(
    (status = 202, description = "Accepted, whether or not anything waits", body = PickupRequested),
    (status = 422, description = "`invalid_contact`, `phone_country_not_allowed`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 503, description = "`sms_budget_exhausted`", body = ErrorBody),
))]
async fn request_at_locker(
    State(ctx): State<ApiContext>,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<ContactBody>,
) -> Result<(StatusCode, AppJson<PickupRequested>)> {
    let Path(locker_id) = id?;
    let contact = parse_contact(&body.contact)?;
    let mut conn = ctx.db.acquire().await?;
    ctx.collection().request(&mut conn, &by, Place::Locker(locker_id), &contact).await?;
    Ok(accepted())
}

/// Anyone at the locker: the code opens the door (collect, or return to the sender).
#[utoipa::path(post, path = "/lockers/{id}/pickup/collect", tag = "pickup", request_body = CodeBody, params(("id" = Uuid, Path, description = "The locker")), responses(
    (status = 200, description = "The door is opening", body = Opened),
    (status = 401, description = "`invalid_code`", body = ErrorBody),
    (status = 409, description = "`item_unavailable`, `point_offline` (the code is not spent)", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
))]
async fn collect_at_locker(
    State(ctx): State<ApiContext>,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<Opened>> {
    let Path(locker_id) = id?;
    let mut conn = ctx.db.acquire().await?;
    let opening = ctx.collection().collect(&mut conn, &by, Place::Locker(locker_id), &body.code).await?;
    Ok(opened(opening, false))
}

/// The point's screen: one code per item waiting for the contact at this point.
#[utoipa::path(post, path = "/locker-points/{id}/pickup/request", tag = "pickup", request_body = ContactBody,
    params(("id" = Uuid, Path, description = "The locker point")), security(("kiosk_token" = [])), responses(
    (status = 202, description = "Accepted, whether or not anything waits", body = PickupRequested),
    (status = 422, description = "`invalid_contact`, `phone_country_not_allowed`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 503, description = "`sms_budget_exhausted`", body = ErrorBody),
    (status = 403, description = "`wrong_point`: the screen belongs to another point", body = ErrorBody),
))]
async fn request_at_point(
    State(ctx): State<ApiContext>,
    kiosk: KioskPoint,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<ContactBody>,
) -> Result<(StatusCode, AppJson<PickupRequested>)> {
    let Path(point_id) = id?;
    kiosk.require(point_id)?;
    let contact = parse_contact(&body.contact)?;
    let mut conn = ctx.db.acquire().await?;
    ctx.collection().request(&mut conn, &by, Place::Point(point_id), &contact).await?;
    Ok(accepted())
}

/// The point's screen: the code opens its item's door.
#[utoipa::path(post, path = "/locker-points/{id}/pickup/collect", tag = "pickup", request_body = CodeBody,
    params(("id" = Uuid, Path, description = "The locker point")), security(("kiosk_token" = [])), responses(
    (status = 200, description = "The door is opening", body = Opened),
    (status = 401, description = "`invalid_code`", body = ErrorBody),
    (status = 409, description = "`item_unavailable`, `point_offline` (the code is not spent)", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 403, description = "`wrong_point`: the screen belongs to another point", body = ErrorBody),
))]
async fn collect_at_point(
    State(ctx): State<ApiContext>,
    kiosk: KioskPoint,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<Opened>> {
    let Path(point_id) = id?;
    kiosk.require(point_id)?;
    let mut conn = ctx.db.acquire().await?;
    let opening = ctx.collection().collect(&mut conn, &by, Place::Point(point_id), &body.code).await?;
    Ok(opened(opening, true))
}
