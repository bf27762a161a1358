//! `/states`, `/cities`, `/locker-points`: reads are public, writes admin-only
//! and audited.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use lockers_core::config::DoorDriver;
use lockers_core::places::{self, LockerPoint, NewPoint, PlaceError, PointChanges, SearchTerms};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiContext;
use crate::audit_log;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminActor, PathId, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/states", get(list_states).post(create_state))
        .route("/states/{id}", patch(rename_state).delete(delete_state))
        .route("/cities", get(list_cities).post(create_city))
        .route("/cities/{id}", patch(update_city).delete(delete_city))
        .route("/locker-points", get(list_points).post(create_point))
        .route("/locker-points/{id}", get(get_point).patch(update_point).delete(delete_point))
        .route("/locker-points/{id}/controller-token", post(rotate_token))
}

/// Maps a place error; `children` names what still hangs below.
fn place_error(e: PlaceError, children: &'static str) -> ApiError {
    match e {
        PlaceError::NameTaken => ApiError::conflict("name_taken", "the name is already used within the same parent"),
        PlaceError::ParentMissing => ApiError::unprocessable("parent_not_found", "the parent place does not exist"),
        PlaceError::HasChildren => ApiError::conflict(children, "delete what it contains first"),
        PlaceError::Database(e) => e.into(),
    }
}

fn name(raw: &str, max: usize) -> Result<String> {
    places::parse_name(raw, max)
        .ok_or_else(|| ApiError::unprocessable("invalid_name", format!("name must be 1 to {max} characters")))
}

// States ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

async fn list_states(State(ctx): State<ApiContext>, query: QueryOf<PageQuery>) -> Result<AppJson<List<places::State>>> {
    let page = query?.0.parse()?;
    let (items, total) = places::list_states(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items, page, total)))
}

async fn create_state(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<NameBody>,
) -> Result<(StatusCode, AppJson<places::State>)> {
    let name = name(&body.name, 100)?;
    let mut tx = ctx.db.begin().await?;
    let state = places::create_state(&mut tx, &name).await.map_err(|e| place_error(e, "state_has_cities"))?;
    audit_log::record(&mut tx, &actor, "state.create", "state", state.id, None::<&()>, Some(&state)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(state)))
}

async fn rename_state(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<NameBody>,
) -> Result<AppJson<places::State>> {
    let Path(id) = id?;
    let name = name(&body.name, 100)?;
    let mut tx = ctx.db.begin().await?;
    let before = places::state(&mut tx, id).await?.ok_or(ApiError::NotFound("state"))?;
    let after = places::rename_state(&mut tx, id, &name)
        .await
        .map_err(|e| place_error(e, "state_has_cities"))?
        .ok_or(ApiError::NotFound("state"))?;
    audit_log::record(&mut tx, &actor, "state.update", "state", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(AppJson(after))
}

async fn delete_state(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    let mut tx = ctx.db.begin().await?;
    let before = places::state(&mut tx, id).await?.ok_or(ApiError::NotFound("state"))?;
    places::delete_state(&mut tx, id).await.map_err(|e| place_error(e, "state_has_cities"))?;
    audit_log::record(&mut tx, &actor, "state.delete", "state", id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// Cities ----------------------------------------------------------------------

#[derive(Deserialize)]
struct CityQuery {
    state_id: Option<Uuid>,
    page: Option<u32>,
    per_page: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CityBody {
    state_id: Uuid,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CityChanges {
    state_id: Option<Uuid>,
    name: Option<String>,
}

async fn list_cities(State(ctx): State<ApiContext>, query: QueryOf<CityQuery>) -> Result<AppJson<List<places::City>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let (items, total) =
        places::list_cities(&mut *ctx.db.acquire().await?, q.state_id, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items, page, total)))
}

async fn create_city(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<CityBody>,
) -> Result<(StatusCode, AppJson<places::City>)> {
    let name = name(&body.name, 100)?;
    let mut tx = ctx.db.begin().await?;
    let city =
        places::create_city(&mut tx, body.state_id, &name).await.map_err(|e| place_error(e, "city_has_points"))?;
    audit_log::record(&mut tx, &actor, "city.create", "city", city.id, None::<&()>, Some(&city)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(city)))
}

async fn update_city(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<CityChanges>,
) -> Result<AppJson<places::City>> {
    let Path(id) = id?;
    let name = body.name.as_deref().map(|n| name(n, 100)).transpose()?;
    let mut tx = ctx.db.begin().await?;
    let before = places::city(&mut tx, id).await?.ok_or(ApiError::NotFound("city"))?;
    let after = places::update_city(&mut tx, id, body.state_id, name.as_deref())
        .await
        .map_err(|e| place_error(e, "city_has_points"))?
        .ok_or(ApiError::NotFound("city"))?;
    audit_log::record(&mut tx, &actor, "city.update", "city", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(AppJson(after))
}

async fn delete_city(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    let mut tx = ctx.db.begin().await?;
    let before = places::city(&mut tx, id).await?.ok_or(ApiError::NotFound("city"))?;
    places::delete_city(&mut tx, id).await.map_err(|e| place_error(e, "city_has_points"))?;
    audit_log::record(&mut tx, &actor, "city.delete", "city", id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

// Locker points ---------------------------------------------------------------

#[derive(Serialize)]
struct PointView {
    #[serde(flatten)]
    point: LockerPoint,
    online: bool,
    /// Only in answers to admins' writes: controller addresses are internal.
    #[serde(skip_serializing_if = "Option::is_none")]
    controller_url: Option<String>,
}

/// Under the simulated driver every point counts as online.
fn view(ctx: &ApiContext, point: LockerPoint) -> PointView {
    let online = ctx.config.door_driver == DoorDriver::Simulated || point.heartbeat_is_recent(chrono::Utc::now());
    PointView { point, online, controller_url: None }
}

/// The view an admin gets back from a write, with the controller URL.
fn admin_view(ctx: &ApiContext, point: LockerPoint) -> PointView {
    let controller_url = point.controller_url.clone();
    PointView { controller_url, ..view(ctx, point) }
}

#[derive(Serialize)]
struct CreatedPoint {
    #[serde(flatten)]
    point: PointView,
    /// Shown once; only its hash is stored.
    controller_token: String,
}

#[derive(Deserialize)]
struct PointQuery {
    city_id: Option<Uuid>,
    q: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointBody {
    city_id: Uuid,
    name: String,
    address: String,
    controller_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointChangesBody {
    city_id: Option<Uuid>,
    name: Option<String>,
    address: Option<String>,
    /// `null` clears it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    controller_url: Option<Option<String>>,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn controller_url(raw: &str) -> Result<String> {
    let url = raw.trim();
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 500
        && !url.contains(char::is_control)
        && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
    if ok {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(ApiError::unprocessable("invalid_controller_url", "controller_url must be an http(s) URL"))
    }
}

fn address(raw: &str) -> Result<String> {
    places::parse_name(raw, 500)
        .ok_or_else(|| ApiError::unprocessable("invalid_address", "address must be 1 to 500 characters"))
}

async fn list_points(State(ctx): State<ApiContext>, query: QueryOf<PointQuery>) -> Result<AppJson<List<PointView>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let terms = q.q.as_deref().and_then(SearchTerms::parse);
    let (points, total) =
        places::list_points(&mut *ctx.db.acquire().await?, q.city_id, terms.as_ref(), page.limit(), page.offset())
            .await?;
    Ok(AppJson(List::new(points.into_iter().map(|p| view(&ctx, p)).collect(), page, total)))
}

async fn get_point(State(ctx): State<ApiContext>, id: PathId) -> Result<AppJson<PointView>> {
    let Path(id) = id?;
    let point = places::point(&mut *ctx.db.acquire().await?, id).await?.ok_or(ApiError::NotFound("locker point"))?;
    Ok(AppJson(view(&ctx, point)))
}

async fn create_point(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<PointBody>,
) -> Result<(StatusCode, AppJson<CreatedPoint>)> {
    let name = name(&body.name, 200)?;
    let address = address(&body.address)?;
    let url = body.controller_url.as_deref().map(controller_url).transpose()?;
    let mut tx = ctx.db.begin().await?;
    let new = NewPoint { city_id: body.city_id, name: &name, address: &address, controller_url: url.as_deref() };
    let (point, token) = places::create_point(&mut tx, new).await.map_err(|e| place_error(e, "point_has_lockers"))?;
    audit_log::record(&mut tx, &actor, "locker_point.create", "locker_point", point.id, None::<&()>, Some(&point))
        .await?;
    tx.commit().await?;
    let created = CreatedPoint { point: admin_view(&ctx, point), controller_token: token.expose().to_owned() };
    Ok((StatusCode::CREATED, AppJson(created)))
}

async fn update_point(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<PointChangesBody>,
) -> Result<AppJson<PointView>> {
    let Path(id) = id?;
    let name = body.name.as_deref().map(|n| name(n, 200)).transpose()?;
    let address = body.address.as_deref().map(address).transpose()?;
    let url = match &body.controller_url {
        Some(Some(raw)) => Some(Some(controller_url(raw)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = ctx.db.begin().await?;
    let before = places::point(&mut tx, id).await?.ok_or(ApiError::NotFound("locker point"))?;
    let changes = PointChanges {
        city_id: body.city_id,
        name: name.as_deref(),
        address: address.as_deref(),
        controller_url: url.as_ref().map(|u| u.as_deref()),
    };
    let after = places::update_point(&mut tx, id, changes)
        .await
        .map_err(|e| place_error(e, "point_has_lockers"))?
        .ok_or(ApiError::NotFound("locker point"))?;
    audit_log::record(&mut tx, &actor, "locker_point.update", "locker_point", id, Some(&before), Some(&after)).await?;
    tx.commit().await?;
    Ok(AppJson(admin_view(&ctx, after)))
}

async fn delete_point(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    let mut tx = ctx.db.begin().await?;
    let before = places::point(&mut tx, id).await?.ok_or(ApiError::NotFound("locker point"))?;
    places::delete_point(&mut tx, id).await.map_err(|e| place_error(e, "point_has_lockers"))?;
    audit_log::record(&mut tx, &actor, "locker_point.delete", "locker_point", id, Some(&before), None::<&()>).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct RotatedToken {
    controller_token: String,
}

/// A new controller token; the old one stops working at once.
async fn rotate_token(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
) -> Result<AppJson<RotatedToken>> {
    let Path(id) = id?;
    let mut tx = ctx.db.begin().await?;
    let token = places::rotate_controller_token(&mut tx, id).await?.ok_or(ApiError::NotFound("locker point"))?;
    audit_log::record(&mut tx, &actor, "locker_point.rotate_token", "locker_point", id, None::<&()>, None::<&()>)
        .await?;
    tx.commit().await?;
    Ok(AppJson(RotatedToken { controller_token: token.expose().to_owned() }))
}
