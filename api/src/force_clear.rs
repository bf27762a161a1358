//! `POST /admin/lockers/{id}/force-clear`: an admin empties a locker (the
//! rules are `lockers_core::exchange::force_clear`'s).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use lockers_core::billing::Tariffs;
use lockers_core::exchange::force_clear::{self, ClearReason, ForceClearError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminActor, PathId};

pub fn router() -> Router<ApiContext> {
    Router::new().route("/admin/lockers/{id}/force-clear", post(force_clear))
}

impl From<ForceClearError> for ApiError {
    fn from(e: ForceClearError) -> Self {
        match e {
            ForceClearError::NotFound => ApiError::NotFound("locker"),
            ForceClearError::Exchange(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceClearBody {
    reason: String,
}

#[derive(Serialize)]
struct Accepted {
    command_id: Uuid,
    /// The item the open will remove; none when the locker is empty.
    item_id: Option<Uuid>,
}

/// `202`: the door will open; the item inside is removed when it does.
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
