//! The point-side routes: events from a point's controller (protocol v1)
//! and the enrolment of a point's screen (its kiosk token, or a one-time
//! enrolment code the screen redeems at `/kiosk/{id}/enrol`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lockers_core::audit::Party;
use lockers_core::exchange::events::{self, Event, EventError, Kind};
use lockers_core::places::credentials;
use lockers_core::places::enrolment::{self, EnrolmentError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminActor, Caller, ControllerPoint, PathId};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(controller_event))
        .routes(routes!(rotate_kiosk_token))
        .routes(routes!(issue_kiosk_enrolment))
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::UnknownDoor => ApiError::NotFound("door"),
            EventError::ForeignCommand => {
                ApiError::Refused { code: "foreign_command", message: "the command is not one of this door's" }
            }
            EventError::Exchange(e) => e.into(),
        }
    }
}

impl From<EnrolmentError> for ApiError {
    fn from(e: EnrolmentError) -> Self {
        match e {
            EnrolmentError::InvalidCode => ApiError::AuthFailed {
                code: "invalid_enrolment_code",
                message: "the enrolment code is wrong, expired or already used",
            },
            EnrolmentError::Place(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"door_no": 3, "event": "door_closed", "command_id": null}))]
struct EventBody {
    event: Kind,
    door_no: Option<i32>,
    command_id: Option<Uuid>,
}

/// Door controller protocol v1: a door opened or closed, or a heartbeat.
///
/// `204` once recorded; a replay is recorded once.
#[utoipa::path(post, path = "/controller/events", tag = "controller", request_body = EventBody,
    security(("controller_token" = [])), responses(
    (status = 204, description = "Recorded"),
    (status = 403, description = "`foreign_command`", body = ErrorBody),
    (status = 404, description = "`not_found`: no such door at this point, or unknown command", body = ErrorBody),
    (status = 422, description = "`door_no_required`", body = ErrorBody),
))]
async fn controller_event(
    State(ctx): State<ApiContext>,
    ControllerPoint(point_id): ControllerPoint,
    Caller(caller): Caller,
    AppJson(body): AppJson<EventBody>,
) -> Result<StatusCode> {
    if body.event != Kind::Heartbeat && body.door_no.is_none() {
        return Err(ApiError::unprocessable("door_no_required", "door events name their door"));
    }
    let event = Event { kind: body.event, door_no: body.door_no, command_id: body.command_id };
    let by = caller.as_party(Party::Controller(point_id));
    events::record(&mut *ctx.db.acquire().await?, &by, point_id, event).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct KioskTokenBody {
    kiosk_token: String,
}

/// A new credential for the point's screen, shown once; the old one stops working.
#[utoipa::path(post, path = "/locker-points/{id}/kiosk-token", tag = "controller", params(("id" = Uuid, Path, description = "The locker point")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = KioskTokenBody),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
))]
async fn rotate_kiosk_token(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
) -> Result<AppJson<KioskTokenBody>> {
    let Path(id) = id?;
    let token = credentials::rotate_kiosk_token(&mut *ctx.db.acquire().await?, &actor, id).await?;
    Ok(AppJson(KioskTokenBody { kiosk_token: token.expose().to_owned() }))
}

/// A one-time enrolment for a point's screen: open `url` on the screen (or
/// type `code` at `/kiosk/{id}/enrol`) before `expires_at`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"code": "7KQ2-M9XD-4TRB-0HZC", "url": "/kiosk/0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10/enrol?code=7KQ2-M9XD-4TRB-0HZC", "expires_at": "2026-11-22T19:30:00Z"}))]
struct KioskEnrolmentBody {
    code: String,
    /// Relative: the screen opens it on this server.
    url: String,
    expires_at: DateTime<Utc>,
}

/// A one-time code (and link) that enrols the point's screen.
///
/// Valid 10 minutes, usable once; a newer one retires it. The screen that
/// redeems it gets a new kiosk token (the old one stops working).
#[utoipa::path(post, path = "/locker-points/{id}/kiosk-enrolment", tag = "controller", params(("id" = Uuid, Path, description = "The locker point")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 201, body = KioskEnrolmentBody),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
))]
async fn issue_kiosk_enrolment(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
) -> Result<(StatusCode, AppJson<KioskEnrolmentBody>)> {
    let Path(id) = id?;
    let issued = enrolment::issue(&mut *ctx.db.acquire().await?, &actor, id).await?;
    let code = issued.code.display();
    let url = format!("/kiosk/{id}/enrol?code={code}");
    Ok((StatusCode::CREATED, AppJson(KioskEnrolmentBody { code, url, expires_at: issued.expires_at })))
}
