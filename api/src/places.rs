//! `/states`, `/cities`, `/locker-points`: reads are public, writes admin-only
//! and audited (the use cases of `lockers_core::places`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use lockers_core::config::DoorDriver;
use lockers_core::places::directory::{Narrowing, PointEntry, PointHit};
use lockers_core::places::lockers::Size;
use lockers_core::places::{
    self, Address, City, CityChanges, ControllerUrl, ControllerUrlError, LockerPoint, NewPoint, PlaceError, PlaceKind,
    PlaceName, PointChanges,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminActor, PathId, QueryOf};
use crate::pagination::{List, PageQuery, search_terms};

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

impl From<PlaceError> for ApiError {
    fn from(e: PlaceError) -> Self {
        match e {
            PlaceError::NotFound(kind) => ApiError::NotFound(kind.noun()),
            PlaceError::NameTaken => {
                ApiError::conflict("name_taken", "the name is already used within the same parent")
            }
            PlaceError::ParentMissing => ApiError::unprocessable("parent_not_found", "the parent place does not exist"),
            PlaceError::HasChildren(kind) => {
                let code = match kind {
                    PlaceKind::State => "state_has_cities",
                    PlaceKind::City => "city_has_points",
                    PlaceKind::Point => "point_has_lockers",
                };
                ApiError::conflict(code, "delete what it contains first")
            }
            PlaceError::Db(e) => e.into(),
        }
    }
}

fn name(raw: &str, max: usize) -> Result<PlaceName> {
    PlaceName::parse(raw, max)
        .ok_or_else(|| ApiError::unprocessable("invalid_name", format!("name must be 1 to {max} characters")))
}

// States ----------------------------------------------------------------------

#[derive(Serialize)]
struct StateView {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<&places::State> for StateView {
    fn from(s: &places::State) -> Self {
        Self { id: s.id, name: s.name.clone(), created_at: s.created_at }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: String,
}

async fn list_states(State(ctx): State<ApiContext>, query: QueryOf<PageQuery>) -> Result<AppJson<List<StateView>>> {
    let page = query?.0.parse()?;
    let (items, total) = places::list_states(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.iter().map(StateView::from).collect(), page, total)))
}

async fn create_state(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<NameBody>,
) -> Result<(StatusCode, AppJson<StateView>)> {
    let name = name(&body.name, PlaceName::MAX)?;
    let state = places::create_state(&mut *ctx.db.acquire().await?, &actor, name).await?;
    ctx.places_changed().await;
    Ok((StatusCode::CREATED, AppJson(StateView::from(&state))))
}

async fn rename_state(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<NameBody>,
) -> Result<AppJson<StateView>> {
    let Path(id) = id?;
    let name = name(&body.name, PlaceName::MAX)?;
    let state = places::rename_state(&mut *ctx.db.acquire().await?, &actor, id, name).await?;
    ctx.places_changed().await;
    Ok(AppJson(StateView::from(&state)))
}

async fn delete_state(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    places::delete_state(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

// Cities ----------------------------------------------------------------------

#[derive(Serialize)]
struct CityView {
    id: Uuid,
    state_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<&City> for CityView {
    fn from(c: &City) -> Self {
        Self { id: c.id, state_id: c.state_id, name: c.name.clone(), created_at: c.created_at }
    }
}

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
struct CityChangesBody {
    state_id: Option<Uuid>,
    name: Option<String>,
}

async fn list_cities(State(ctx): State<ApiContext>, query: QueryOf<CityQuery>) -> Result<AppJson<List<CityView>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let (items, total) =
        places::list_cities(&mut *ctx.db.acquire().await?, q.state_id, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.iter().map(CityView::from).collect(), page, total)))
}

async fn create_city(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<CityBody>,
) -> Result<(StatusCode, AppJson<CityView>)> {
    let name = name(&body.name, PlaceName::MAX)?;
    let city = places::create_city(&mut *ctx.db.acquire().await?, &actor, body.state_id, name).await?;
    ctx.places_changed().await;
    Ok((StatusCode::CREATED, AppJson(CityView::from(&city))))
}

async fn update_city(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<CityChangesBody>,
) -> Result<AppJson<CityView>> {
    let Path(id) = id?;
    let changes = CityChanges {
        state_id: body.state_id,
        name: body.name.as_deref().map(|n| name(n, PlaceName::MAX)).transpose()?,
    };
    let city = places::update_city(&mut *ctx.db.acquire().await?, &actor, id, changes).await?;
    ctx.places_changed().await;
    Ok(AppJson(CityView::from(&city)))
}

async fn delete_city(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    places::delete_city(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

// Locker points ---------------------------------------------------------------

/// A point as the API shows it: the controller URL only in answers to admins' writes.
#[derive(Serialize)]
struct PointView {
    id: Uuid,
    city_id: Uuid,
    name: String,
    address: String,
    last_heartbeat_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    online: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    controller_url: Option<String>,
}

impl PointView {
    /// The public view.
    fn new(ctx: &ApiContext, point: &LockerPoint) -> Self {
        Self {
            id: point.id,
            city_id: point.city_id,
            name: point.name.clone(),
            address: point.address.clone(),
            last_heartbeat_at: point.last_heartbeat_at,
            created_at: point.created_at,
            online: point.is_online(Utc::now(), ctx.config.door_driver == DoorDriver::Simulated),
            controller_url: None,
        }
    }

    /// The view an admin gets back from a write, with the controller URL.
    fn for_admin(ctx: &ApiContext, point: &LockerPoint) -> Self {
        Self { controller_url: point.controller_url.clone(), ..Self::new(ctx, point) }
    }
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
    /// Only points with a locker of this size available now.
    size: Option<Size>,
    page: Option<u32>,
    per_page: Option<u32>,
}

/// Lockers available now at a point, per size.
#[derive(Serialize)]
struct Available {
    #[serde(rename = "S")]
    s: u32,
    #[serde(rename = "M")]
    m: u32,
    #[serde(rename = "L")]
    l: u32,
    #[serde(rename = "XL")]
    xl: u32,
}

/// The city and state a point stands in, as search results show them.
#[derive(Serialize)]
pub(crate) struct PlaceOf {
    city_id: Uuid,
    city_name: String,
    state_id: Uuid,
    state_name: String,
}

impl PlaceOf {
    pub(crate) fn new(city_id: Uuid, city_name: &str, state_id: Uuid, state_name: &str) -> Self {
        Self { city_id, city_name: city_name.to_owned(), state_id, state_name: state_name.to_owned() }
    }

    pub(crate) fn of(p: &PointEntry) -> Self {
        Self::new(p.city_id, &p.city_name, p.state_id, &p.state_name)
    }
}

/// A point found by search: its place, whether it answers, and what is free there.
#[derive(Serialize)]
struct FoundPoint {
    id: Uuid,
    name: String,
    address: String,
    #[serde(flatten)]
    place: PlaceOf,
    last_heartbeat_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    online: bool,
    available: Available,
}

impl FoundPoint {
    fn new(hit: &PointHit<'_>, now: DateTime<Utc>, doors_simulated: bool) -> Self {
        let (p, [s, m, l, xl]) = (hit.point, hit.available);
        Self {
            id: p.id,
            name: p.name.to_string(),
            address: p.address.to_string(),
            place: PlaceOf::of(p),
            last_heartbeat_at: p.last_heartbeat_at,
            created_at: p.created_at,
            online: places::is_online(p.last_heartbeat_at, now, doors_simulated),
            available: Available { s, m, l, xl },
        }
    }
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

/// A point's controller URL; in production not an internal address unless
/// `CONTROLLER_ALLOW_PRIVATE_URLS` (no SSRF through a point's URL).
fn controller_url(ctx: &ApiContext, raw: &str) -> Result<ControllerUrl> {
    ControllerUrl::parse_checked(raw, places::internal_controllers_allowed(&ctx.config)).map_err(|e| match e {
        ControllerUrlError::Invalid => ApiError::unprocessable("invalid_controller_url", e.to_string()),
        ControllerUrlError::Internal => ApiError::unprocessable("controller_url_not_allowed", e.to_string()),
    })
}

fn address(raw: &str) -> Result<Address> {
    Address::parse(raw).ok_or_else(|| {
        ApiError::unprocessable("invalid_address", format!("address must be 1 to {} characters", Address::MAX))
    })
}

/// Search by place, answered from the search directory: points ranked by
/// match (typos included, below exact matches), each with what is available.
async fn list_points(State(ctx): State<ApiContext>, query: QueryOf<PointQuery>) -> Result<AppJson<List<FoundPoint>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let narrowing = Narrowing { terms: search_terms(q.q.as_deref())?, city_id: q.city_id, point_id: None };
    let snapshot = ctx.directory.snapshot().await?;
    let (hits, total) = snapshot.points(&narrowing, q.size, page.offset_rows(), page.limit_rows());
    let (now, simulated) = (Utc::now(), ctx.config.door_driver == DoorDriver::Simulated);
    let items = hits.iter().map(|hit| FoundPoint::new(hit, now, simulated)).collect();
    Ok(AppJson(List::new(items, page, total as i64)))
}

async fn get_point(State(ctx): State<ApiContext>, id: PathId) -> Result<AppJson<PointView>> {
    let Path(id) = id?;
    let point = places::point(&mut *ctx.db.acquire().await?, id).await?.ok_or(ApiError::NotFound("locker point"))?;
    Ok(AppJson(PointView::new(&ctx, &point)))
}

async fn create_point(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    AppJson(body): AppJson<PointBody>,
) -> Result<(StatusCode, AppJson<CreatedPoint>)> {
    let new = NewPoint {
        city_id: body.city_id,
        name: name(&body.name, PlaceName::POINT_MAX)?,
        address: address(&body.address)?,
        controller_url: body.controller_url.as_deref().map(|url| controller_url(&ctx, url)).transpose()?,
    };
    let key = places::ControllerKey::from_config(&ctx.config);
    let (point, token) = places::create_point(&mut *ctx.db.acquire().await?, &actor, &key, new).await?;
    ctx.places_changed().await;
    let created =
        CreatedPoint { point: PointView::for_admin(&ctx, &point), controller_token: token.expose().to_owned() };
    Ok((StatusCode::CREATED, AppJson(created)))
}

async fn update_point(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<PointChangesBody>,
) -> Result<AppJson<PointView>> {
    let Path(id) = id?;
    let changes = PointChanges {
        city_id: body.city_id,
        name: body.name.as_deref().map(|n| name(n, PlaceName::POINT_MAX)).transpose()?,
        address: body.address.as_deref().map(address).transpose()?,
        controller_url: body
            .controller_url
            .as_ref()
            .map(|url| url.as_deref().map(|url| controller_url(&ctx, url)).transpose())
            .transpose()?,
    };
    let point = places::update_point(&mut *ctx.db.acquire().await?, &actor, id, changes).await?;
    ctx.places_changed().await;
    Ok(AppJson(PointView::for_admin(&ctx, &point)))
}

async fn delete_point(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    places::delete_point(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
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
    let key = places::ControllerKey::from_config(&ctx.config);
    let token = places::rotate_controller_token(&mut *ctx.db.acquire().await?, &actor, &key, id).await?;
    Ok(AppJson(RotatedToken { controller_token: token.expose().to_owned() }))
}
