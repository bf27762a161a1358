//! `/lockers`: search by place (public), and `/admin/lockers` (admin, audited:
//! the use cases of `lockers_core::places::lockers`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lockers_core::config::DoorDriver;
use lockers_core::places::directory::{LockerHit, Narrowing};
use lockers_core::places::lockers::{self, DoorNo, Locker, LockerChanges, LockerError, NewLocker, Size, Status};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminActor, PathId, QueryOf};
use crate::pagination::{List, PageQuery, search_terms};
use crate::places::PlaceOf;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(by_place))
        .routes(routes!(get_locker))
        .routes(routes!(create))
        .routes(routes!(update, delete))
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
/// A locker with its place.
#[derive(Serialize, ToSchema)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// Words of the place name, address or city.
    q: Option<String>,
    /// The place to search by (`/lockers/by-place` only, where it is required).
    location: Option<String>,
    status: Option<Status>,
    size: Option<Size>,
    point_id: Option<Uuid>,
    city_id: Option<Uuid>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
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

/// Lockers matching place text `q` (point name, address, city, state) and
/// filters: status, size, point, city.
#[utoipa::path(get, path = "/lockers", tag = "lockers", params(SearchQuery), responses(
    (status = 200, body = List<LockerView>),
    (status = 400, description = "`invalid_query`: `q` over 200 characters", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
async fn search(State(ctx): State<ApiContext>, query: QueryOf<SearchQuery>) -> Result<AppJson<List<LockerView>>> {
    let Query(q) = query?;
    let text = q.q.clone();
    run_search(&ctx, q, text.as_deref()).await
}

/// The same search by a place (`location` required).
#[utoipa::path(get, path = "/lockers/by-place", tag = "lockers", params(SearchQuery), responses(
    (status = 200, body = List<LockerView>),
    (status = 400, description = "`invalid_query`: `location` is required or over 200 characters", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
async fn by_place(State(ctx): State<ApiContext>, query: QueryOf<SearchQuery>) -> Result<AppJson<List<LockerView>>> {
    let Query(q) = query?;
    let Some(location) = q.location.clone().filter(|l| !l.trim().is_empty()) else {
        return Err(ApiError::bad_request("invalid_query", "`location` is required"));
    };
    run_search(&ctx, q, Some(&location)).await
}

#[utoipa::path(get, path = "/lockers/{id}", tag = "lockers", params(("id" = Uuid, Path, description = "The locker")), responses(
    (status = 200, body = LockerView),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
async fn get_locker(State(ctx): State<ApiContext>, id: PathId) -> Result<AppJson<LockerView>> {
    let Path(id) = id?;
    let locker = lockers::by_id(&mut *ctx.db.acquire().await?, id).await?.ok_or(ApiError::NotFound("locker"))?;
    Ok(AppJson(LockerView::new(&ctx, &locker)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"point_id": "0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10", "door_no": 3, "size": "M"}))]
struct CreateBody {
    point_id: Uuid,
    door_no: i32,
    size: Size,
}

#[derive(Deserialize, ToSchema)]
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

#[utoipa::path(post, path = "/admin/lockers", tag = "lockers", request_body = CreateBody, security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 201, body = LockerView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 409, description = "`door_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_door_no`, `point_not_found`", body = ErrorBody),
))]
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
/// Door, size or status (`available` or `maintenance` only).
#[utoipa::path(patch, path = "/admin/lockers/{id}", tag = "lockers", request_body = UpdateBody, params(("id" = Uuid, Path, description = "The locker")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = LockerView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`door_taken`, `locker_in_use`", body = ErrorBody),
    (status = 422, description = "`invalid_door_no`, `status_not_settable`", body = ErrorBody),
))]
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
/// Only an empty locker without history.
#[utoipa::path(delete, path = "/admin/lockers/{id}", tag = "lockers", params(("id" = Uuid, Path, description = "The locker")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 204, description = "Deleted"),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`locker_not_empty`, `locker_in_use`, `locker_has_history`", body = ErrorBody),
))]
async fn delete(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    lockers::delete(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}
