//! `POST /admin/lockers/{id}/force-clear`: an admin empties a locker (the
//! rules are `lockers_core::exchange::force_clear`'s).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use lockers_core::billing::Tariffs;
use lockers_core::exchange::force_clear::{self, ClearReason, ForceClearError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminActor, PathId};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(force_clear))
}

impl From<ForceClearError> for ApiError {
    fn from(e: ForceClearError) -> Self {
        match e {
            ForceClearError::NotFound => ApiError::NotFound("locker"),
            ForceClearError::Exchange(e) => e.into(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "customer called: item left too long"}))]
struct ForceClearBody {
    reason: String,
}

#[derive(Serialize, ToSchema)]
struct Accepted {
    command_id: Uuid,
    /// The item the open will remove; none when the locker is empty.
    item_id: Option<Uuid>,
}

/// `202`: the door will open; the item inside is removed when it does.
/// Opens the door, marks the item `force_removed`, closes its billing; audited.
#[utoipa::path(post, path = "/admin/lockers/{id}/force-clear", tag = "lockers", request_body = ForceClearBody,
    params(("id" = Uuid, Path, description = "The locker")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 202, description = "The door command is queued", body = Accepted),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 422, description = "`invalid_reason`", body = ErrorBody),
))]
async fn force_clear(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<ForceClearBody>,
) -> Result<(StatusCode, AppJson<Accepted>)> {
    let Path(locker_id) = id?;
    let reason = ClearReason::parse(&body.reason)
        .ok_or_else(|| ApiError::unprocessable("invalid_reason", "reason must be 1 to 500 characters"))?;
    let tariffs = Tariffs::from_config(&ctx.config);
    let done = force_clear::request(&mut *ctx.db.acquire().await?, &actor, &tariffs, locker_id, reason).await?;
    Ok((StatusCode::ACCEPTED, AppJson(Accepted { command_id: done.command_id, item_id: done.item_id })))
}
