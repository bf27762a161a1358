//! Pickup and return: at a locker (anyone standing there: holding the code
//! is the proof) and at a locker point's screen (its kiosk credential). The
//! rules, limits and brute-force bounds: `lockers_core::exchange::collection`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use lockers_core::accounts::contact::Contact;
use lockers_core::exchange::collection::{CollectError, Collection, Opening, Place, RequestError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{Caller, KioskPoint, PathId};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/lockers/{id}/pickup/request", post(request_at_locker))
        .route("/lockers/{id}/pickup/collect", post(collect_at_locker))
        .route("/locker-points/{id}/pickup/request", post(request_at_point))
        .route("/locker-points/{id}/pickup/collect", post(collect_at_point))
}

fn collection(ctx: &ApiContext) -> Collection {
    Collection::new(ctx.config.clone(), ctx.limiter.clone(), ctx.codes.clone())
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
            CollectError::Exchange(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactBody {
    contact: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

fn parse_contact(raw: &str) -> Result<Contact> {
    Contact::parse(raw).map_err(|e| ApiError::unprocessable("invalid_contact", e.to_string()))
}

/// The same answer whether or not anything waits for the contact.
fn accepted() -> (StatusCode, AppJson<Value>) {
    let body =
        json!({ "status": "accepted", "message": "If something waits for this contact here, a code is on its way." });
    (StatusCode::ACCEPTED, AppJson(body))
}

/// `opening: true`: the door command is issued; the item becomes
/// `collected` (`returned`) when the controller acknowledges the open.
fn opened(opening: Opening, with_door: bool) -> AppJson<Value> {
    let mut body = json!({
        "item_id": opening.item_id,
        "status": opening.status,
        "opening": true,
        "command_id": opening.command_id,
        "amount_paise": opening.amount.minor,
        "currency": opening.amount.currency,
        "hours": opening.hours,
    });
    if with_door {
        body["door_no"] = json!(opening.door_no);
    }
    AppJson(body)
}

async fn request_at_locker(
    State(ctx): State<ApiContext>,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<ContactBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    let Path(locker_id) = id?;
    let contact = parse_contact(&body.contact)?;
    let mut conn = ctx.db.acquire().await?;
    collection(&ctx).request(&mut conn, &by, Place::Locker(locker_id), &contact).await?;
    Ok(accepted())
}

async fn collect_at_locker(
    State(ctx): State<ApiContext>,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<Value>> {
    let Path(locker_id) = id?;
    let mut conn = ctx.db.acquire().await?;
    let opening = collection(&ctx).collect(&mut conn, &by, Place::Locker(locker_id), &body.code).await?;
    Ok(opened(opening, false))
}

async fn request_at_point(
    State(ctx): State<ApiContext>,
    kiosk: KioskPoint,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<ContactBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    let Path(point_id) = id?;
    kiosk.require(point_id)?;
    let contact = parse_contact(&body.contact)?;
    let mut conn = ctx.db.acquire().await?;
    collection(&ctx).request(&mut conn, &by, Place::Point(point_id), &contact).await?;
    Ok(accepted())
}

async fn collect_at_point(
    State(ctx): State<ApiContext>,
    kiosk: KioskPoint,
    Caller(by): Caller,
    id: PathId,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<Value>> {
    let Path(point_id) = id?;
    kiosk.require(point_id)?;
    let mut conn = ctx.db.acquire().await?;
    let opening = collection(&ctx).collect(&mut conn, &by, Place::Point(point_id), &body.code).await?;
    Ok(opened(opening, true))
}
