//! `/lockers`: search by place (public), and `/admin/lockers` (admin, audited).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use lockers_core::config::DoorDriver;
use lockers_core::places::lockers::{self, Filter, LockerError, LockerRow, Size, Status, WriteError};
use lockers_core::places::{ONLINE_WINDOW_SECS, SearchTerms};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiContext;
use crate::audit_log;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminActor, PathId, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/lockers", get(search))
        .route("/lockers/by-place", get(by_place))
        .route("/lockers/{id}", get(get_locker))
        .route("/admin/lockers", post(create))
        .route("/admin/lockers/{id}", patch(update).delete(delete))
}

#[derive(Serialize)]
struct LockerView {
    #[serde(flatten)]
    locker: LockerRow,
    /// The point answers: a heartbeat in the last minute (always, under simulated doors).
    online: bool,
}

fn view(ctx: &ApiContext, locker: LockerRow) -> LockerView {
    let online = ctx.config.door_driver == DoorDriver::Simulated
        || locker.last_heartbeat_at.is_some_and(|at| (chrono::Utc::now() - at).num_seconds() < ONLINE_WINDOW_SECS);
    LockerView { locker, online }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    location: Option<String>,
    status: Option<Status>,
    size: Option<Size>,
    point_id: Option<Uuid>,
    city_id: Option<Uuid>,
    page: Option<u32>,
    per_page: Option<u32>,
}

async fn run_search(ctx: &ApiContext, q: SearchQuery, text: Option<&str>) -> Result<AppJson<List<LockerView>>> {
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let filter = Filter {
        status: q.status,
        size: q.size,
        point_id: q.point_id,
        city_id: q.city_id,
        terms: text.and_then(SearchTerms::parse),
    };
    let (rows, total) = lockers::search(&mut *ctx.db.acquire().await?, &filter, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(rows.into_iter().map(|r| view(ctx, r)).collect(), page, total)))
}

/// Lockers matching place text `q` (point name, address, city, state) and filters.
async fn search(State(ctx): State<ApiContext>, query: QueryOf<SearchQuery>) -> Result<AppJson<List<LockerView>>> {
    let Query(q) = query?;
    let text = q.q.clone();
    run_search(&ctx, q, text.as_deref()).await
}

/// The same search, by `location`.
async fn by_place(State(ctx): State<ApiContext>, query: QueryOf<SearchQuery>) -> Result<AppJson<List<LockerView>>> {
    let Query(q) = query?;
    let Some(location) = q.location.clone().filter(|l| !l.trim().is_empty()) else {
        return Err(ApiError::bad_request("invalid_query", "`location` is required"));
    };
    run_search(&ctx, q, Some(&location)).await
}

async fn get_locker(State(ctx): State<ApiContext>, id: PathId) -> Result<AppJson<LockerView>> {
    let Path(id) = id?;
    let locker = lockers::by_id(&mut *ctx.db.acquire().await?, id).await?.ok_or(ApiError::NotFound("locker"))?;
    Ok(AppJson(view(&ctx, locker)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    point_id: Uuid,
    door_no: i32,
    size: Size,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    door_no: Option<i32>,
    size: Option<Size>,
    status: Option<Status>,
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::DoorTaken => ApiError::conflict("door_taken", "the door number is already used at this point"),
        WriteError::PointMissing => ApiError::unprocessable("point_not_found", "the locker point does not exist"),
        WriteError::HasHistory => ApiError::conflict(
            "locker_has_history",
            "the locker has exchanges on record; put it in maintenance instead",
        ),
        WriteError::Database(e) => e.into(),
    }
}

fn door_no(n: i32) -> Result<i32> {
    if (1..=9999).contains(&n) {
        Ok(n)
    } else {
        Err(ApiError::unprocessable("invalid_door_no", "door_no must be between 1 and 9999"))
    }
}

async fn create(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<CreateBody>,
) -> Result<(StatusCode, AppJson<LockerView>)> {
    let door = door_no(body.door_no)?;
    let mut tx = ctx.db.begin().await?;
    let id = lockers::create(&mut tx, body.point_id, door, body.size).await.map_err(write_error)?;
    let locker = lockers::by_id(&mut tx, id).await?.ok_or(ApiError::NotFound("locker"))?;
    audit_log::record(&mut tx, &actor, "locker.create", "locker", id, None::<&()>, Some(&locker)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(view(&ctx, locker))))
}

/// Door number, size, and maintenance on or off; never while an exchange holds the locker.
async fn update(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<UpdateBody>,
) -> Result<AppJson<LockerView>> {
    let Path(id) = id?;
    let door = body.door_no.map(door_no).transpose()?;
    let mut tx = ctx.db.begin().await?;
    let current = lockers::lock(&mut tx, id).await?.ok_or(ApiError::NotFound("locker"))?;
    let in_use = matches!(current, Status::Reserved | Status::Occupied);
    if in_use && (door.is_some() || body.size.is_some()) {
        return Err(ApiError::conflict("locker_in_use", "the locker holds a reservation or an item"));
    }
    if let Some(target) = body.status {
        lockers::admin_status_change(current, target).map_err(|e| match e {
            LockerError::StatusNotSettable => ApiError::unprocessable("status_not_settable", e.to_string()),
            LockerError::InUse => ApiError::conflict("locker_in_use", e.to_string()),
        })?;
    }
    let before = lockers::by_id(&mut tx, id).await?.ok_or(ApiError::NotFound("locker"))?;
    lockers::update(&mut tx, id, door, body.size, body.status).await.map_err(write_error)?;
    let after = lockers::by_id(&mut tx, id).await?.ok_or(ApiError::NotFound("locker"))?;
    let action = match (before.status, after.status) {
        (Status::Available, Status::Maintenance) => "locker.maintenance_on",
        (Status::Maintenance, Status::Available) => "locker.maintenance_off",
        _ => "locker.update",
    };
    audit_log::record(&mut tx, &actor, action, "locker", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(AppJson(view(&ctx, after)))
}

/// Only an empty locker (no reservation, no item) can be deleted.
async fn delete(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    let mut tx = ctx.db.begin().await?;
    let status = lockers::lock(&mut tx, id).await?.ok_or(ApiError::NotFound("locker"))?;
    if matches!(status, Status::Reserved | Status::Occupied) {
        return Err(ApiError::conflict("locker_not_empty", "the locker holds a reservation or an item"));
    }
    let before = lockers::by_id(&mut tx, id).await?.ok_or(ApiError::NotFound("locker"))?;
    lockers::delete(&mut tx, id).await.map_err(write_error)?;
    audit_log::record(&mut tx, &actor, "locker.delete", "locker", id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
