//! `/lockers`: search by place (public), and `/admin/lockers` (admin, audited:
//! the use cases of `lockers_core::places::lockers`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use lockers_core::config::DoorDriver;
use lockers_core::places::directory::{LockerHit, Narrowing};
use lockers_core::places::lockers::{self, DoorNo, Locker, LockerChanges, LockerError, NewLocker, Size, Status};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminActor, PathId, QueryOf};
use crate::pagination::{List, PageQuery, search_terms};
use crate::places::PlaceOf;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/lockers", get(search))
        .route("/lockers/by-place", get(by_place))
        .route("/lockers/{id}", get(get_locker))
        .route("/admin/lockers", post(create))
        .route("/admin/lockers/{id}", patch(update).delete(delete))
}

impl From<LockerError> for ApiError {
    fn from(e: LockerError) -> Self {
        match e {
            LockerError::NotFound => ApiError::NotFound("locker"),
            LockerError::StatusNotSettable => ApiError::unprocessable("status_not_settable", e.to_string()),
            LockerError::InUse => ApiError::conflict("locker_in_use", e.to_string()),
            LockerError::NotEmpty => ApiError::conflict("locker_not_empty", e.to_string()),
            LockerError::DoorTaken => ApiError::conflict("door_taken", e.to_string()),
            LockerError::PointMissing => ApiError::unprocessable("point_not_found", e.to_string()),
            LockerError::HasHistory => ApiError::conflict(
                "locker_has_history",
                "the locker has exchanges on record; put it in maintenance instead",
            ),
            LockerError::Db(e) => e.into(),
        }
    }
}

/// A locker with its place, as the API shows it.
#[derive(Serialize)]
struct LockerView {
    id: Uuid,
    point_id: Uuid,
    door_no: i32,
    size: Size,
    status: Status,
    inner_width_mm: i32,
    inner_height_mm: i32,
    inner_depth_mm: i32,
    point_name: String,
    address: String,
    #[serde(flatten)]
    place: PlaceOf,
    last_heartbeat_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    /// The point answers: a heartbeat in the last minute (always, under simulated doors).
    online: bool,
}

impl LockerView {
    fn new(ctx: &ApiContext, l: &Locker) -> Self {
        Self {
            id: l.id,
            point_id: l.point_id,
            door_no: l.door_no,
            size: l.size,
            status: l.status,
            inner_width_mm: l.inner_width_mm,
            inner_height_mm: l.inner_height_mm,
            inner_depth_mm: l.inner_depth_mm,
            point_name: l.point_name.clone(),
            address: l.address.clone(),
            place: PlaceOf::new(l.city_id, &l.city_name, l.state_id, &l.state_name),
            last_heartbeat_at: l.last_heartbeat_at,
            created_at: l.created_at,
            online: l.point_online(Utc::now(), ctx.config.door_driver == DoorDriver::Simulated),
        }
    }

    /// A search result, from the directory.
    fn found(hit: &LockerHit<'_>, now: DateTime<Utc>, doors_simulated: bool) -> Self {
        let (point, (w, h, d)) = (hit.point, hit.dimensions);
        Self {
            id: hit.locker.id,
            point_id: point.id,
            door_no: hit.locker.door_no,
            size: hit.locker.size,
            status: hit.status,
            inner_width_mm: w,
            inner_height_mm: h,
            inner_depth_mm: d,
            point_name: point.name.to_string(),
            address: point.address.to_string(),
            place: PlaceOf::of(point),
            last_heartbeat_at: point.last_heartbeat_at,
            created_at: hit.locker.created_at,
            online: lockers_core::places::is_online(point.last_heartbeat_at, now, doors_simulated),
        }
    }
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

/// Answered from the search directory: no database work per request.
async fn run_search(ctx: &ApiContext, q: SearchQuery, text: Option<&str>) -> Result<AppJson<List<LockerView>>> {
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let narrowing = Narrowing { terms: search_terms(text)?, city_id: q.city_id, point_id: q.point_id };
    let snapshot = ctx.directory.snapshot().await?;
    let (hits, total) = snapshot.lockers(&narrowing, q.status, q.size, page.offset_rows(), page.limit_rows());
    let (now, simulated) = (Utc::now(), ctx.config.door_driver == DoorDriver::Simulated);
    let items = hits.iter().map(|hit| LockerView::found(hit, now, simulated)).collect();
    Ok(AppJson(List::new(items, page, total as i64)))
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
    Ok(AppJson(LockerView::new(&ctx, &locker)))
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

fn door_no(n: i32) -> Result<DoorNo> {
    DoorNo::parse(n).ok_or_else(|| {
        ApiError::unprocessable("invalid_door_no", format!("door_no must be between 1 and {}", DoorNo::MAX))
    })
}

async fn create(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<CreateBody>,
) -> Result<(StatusCode, AppJson<LockerView>)> {
    let new = NewLocker { point_id: body.point_id, door_no: door_no(body.door_no)?, size: body.size };
    let locker = lockers::create(&mut *ctx.db.acquire().await?, &actor, new).await?;
    ctx.places_changed().await;
    Ok((StatusCode::CREATED, AppJson(LockerView::new(&ctx, &locker))))
}

/// Door number, size, and maintenance on or off; never while an exchange holds the locker.
async fn update(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<UpdateBody>,
) -> Result<AppJson<LockerView>> {
    let Path(id) = id?;
    let changes =
        LockerChanges { door_no: body.door_no.map(door_no).transpose()?, size: body.size, status: body.status };
    let locker = lockers::update(&mut *ctx.db.acquire().await?, &actor, id, changes).await?;
    ctx.places_changed().await;
    Ok(AppJson(LockerView::new(&ctx, &locker)))
}

/// Only an empty locker (no reservation, no item) can be deleted.
async fn delete(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    lockers::delete(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}
