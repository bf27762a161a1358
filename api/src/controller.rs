//! The point-side routes: events from a point's controller (protocol v1)
//! and the enrolment of a point's screen (its kiosk token).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use lockers_core::audit::Party;
use lockers_core::exchange::events::{self, Event, EventError, Kind};
use lockers_core::places::credentials;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminActor, Caller, ControllerPoint, PathId};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(controller_event)).routes(routes!(rotate_kiosk_token))
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"door_no": 3, "event": "door_closed", "command_id": null}))]
struct EventBody {
    event: Kind,
    door_no: Option<i32>,
    command_id: Option<Uuid>,
}

/// `204` once recorded; a replay is recorded once.
/// Door controller protocol v1: a door opened or closed, or a heartbeat.
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

/// Enrols (or re-enrols) the point's screen: a new kiosk token, shown once.
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
