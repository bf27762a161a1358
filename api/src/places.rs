//! `/states`, `/cities`, `/locker-points`: reads are public, writes admin-only
//! and audited (the use cases of `lockers_core::places`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use lockers_core::config::DoorDriver;
use lockers_core::places::directory::{Narrowing, PointEntry, PointHit};
use lockers_core::places::lockers::Size;
use lockers_core::places::{
    self, Address, City, CityChanges, ControllerUrl, ControllerUrlError, LockerPoint, NewPoint, PlaceError, PlaceKind,
    PlaceName, PointChanges,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminActor, PathId, QueryOf};
use crate::pagination::{List, PageQuery, search_terms};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list_states, create_state))
        .routes(routes!(rename_state, delete_state))
        .routes(routes!(list_cities, create_city))
        .routes(routes!(update_city, delete_city))
        .routes(routes!(list_points, create_point))
        .routes(routes!(get_point, update_point, delete_point))
        .routes(routes!(rotate_token))
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

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10", "name": "Karnataka", "created_at": "2026-01-15T09:30:00Z"}))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Karnataka"}))]
struct NameBody {
    name: String,
}

/// Every state, by name.
#[utoipa::path(get, path = "/states", tag = "places", params(PageQuery), responses(
    (status = 200, body = List<StateView>),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
async fn list_states(State(ctx): State<ApiContext>, query: QueryOf<PageQuery>) -> Result<AppJson<List<StateView>>> {
    let page = query?.0.parse()?;
    let (items, total) = places::list_states(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.iter().map(StateView::from).collect(), page, total)))
}

#[utoipa::path(post, path = "/states", tag = "places", request_body = NameBody, security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 201, body = StateView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 409, description = "`name_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`", body = ErrorBody),
))]
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

#[utoipa::path(patch, path = "/states/{id}", tag = "places", request_body = NameBody, params(("id" = Uuid, Path, description = "The state")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = StateView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`name_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`", body = ErrorBody),
))]
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

/// Only a state without cities.
#[utoipa::path(delete, path = "/states/{id}", tag = "places", params(("id" = Uuid, Path, description = "The state")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 204, description = "Deleted"),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`state_has_cities`", body = ErrorBody),
))]
async fn delete_state(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    places::delete_state(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

// Cities ----------------------------------------------------------------------

#[derive(Serialize, ToSchema)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CityQuery {
    /// The cities of this state.
    state_id: Option<Uuid>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CityBody {
    state_id: Uuid,
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CityChangesBody {
    state_id: Option<Uuid>,
    name: Option<String>,
}

/// Cities by name, of one state or all.
#[utoipa::path(get, path = "/cities", tag = "places", params(CityQuery), responses(
    (status = 200, body = List<CityView>),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
async fn list_cities(State(ctx): State<ApiContext>, query: QueryOf<CityQuery>) -> Result<AppJson<List<CityView>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let (items, total) =
        places::list_cities(&mut *ctx.db.acquire().await?, q.state_id, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.iter().map(CityView::from).collect(), page, total)))
}

#[utoipa::path(post, path = "/cities", tag = "places", request_body = CityBody, security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 201, body = CityView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 409, description = "`name_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`, `parent_not_found`", body = ErrorBody),
))]
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

#[utoipa::path(patch, path = "/cities/{id}", tag = "places", request_body = CityChangesBody, params(("id" = Uuid, Path, description = "The city")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = CityView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`name_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`, `parent_not_found`", body = ErrorBody),
))]
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

/// Only a city without locker points.
#[utoipa::path(delete, path = "/cities/{id}", tag = "places", params(("id" = Uuid, Path, description = "The city")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 204, description = "Deleted"),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`city_has_points`", body = ErrorBody),
))]
async fn delete_city(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    places::delete_city(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

// Locker points ---------------------------------------------------------------

/// A point as the API shows it: the controller URL only in answers to admins' writes.
#[derive(Serialize, ToSchema)]
struct PointView {
    id: Uuid,
    city_id: Uuid,
    name: String,
    address: String,
    last_heartbeat_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    /// A heartbeat in the last 60 s (always, with simulated doors).
    online: bool,
    /// Only in answers to admins' writes.
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

#[derive(Serialize, ToSchema)]
struct CreatedPoint {
    #[serde(flatten)]
    point: PointView,
    /// Shown once; only its hash is stored.
    controller_token: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PointQuery {
    /// The points of this city.
    city_id: Option<Uuid>,
    /// Words of the point's name, address or city.
    q: Option<String>,
    /// Only points with a locker of this size available now.
    size: Option<Size>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

/// Lockers available now at a point, per size.
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"city_id": "0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10", "name": "Koramangala Metro",
    "address": "80 Feet Road, Koramangala", "controller_url": "https://ctrl-17.example.net"}))]
struct PointBody {
    city_id: Uuid,
    name: String,
    address: String,
    controller_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PointChangesBody {
    city_id: Option<Uuid>,
    name: Option<String>,
    address: Option<String>,
    /// `null` clears it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
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
/// match (typos included, below exact matches), each with its place, whether
/// it is online and what is available per size.
#[utoipa::path(get, path = "/locker-points", tag = "places", params(PointQuery), responses(
    (status = 200, body = List<FoundPoint>),
    (status = 400, description = "`invalid_query`: `q` over 200 characters", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
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

#[utoipa::path(get, path = "/locker-points/{id}", tag = "places", params(("id" = Uuid, Path, description = "The locker point")), responses(
    (status = 200, body = PointView),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (public reads per client IP, with Retry-After)", body = ErrorBody),
))]
async fn get_point(State(ctx): State<ApiContext>, id: PathId) -> Result<AppJson<PointView>> {
    let Path(id) = id?;
    let point = places::point(&mut *ctx.db.acquire().await?, id).await?.ok_or(ApiError::NotFound("locker point"))?;
    Ok(AppJson(PointView::new(&ctx, &point)))
}

/// A new point; its controller token is in the answer, once.
#[utoipa::path(post, path = "/locker-points", tag = "places", request_body = PointBody, security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 201, body = CreatedPoint),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 409, description = "`name_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`, `invalid_address`, `parent_not_found`, `invalid_controller_url`, `controller_url_not_allowed`", body = ErrorBody),
))]
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

/// `controller_url: null` clears it; an absent field is left as it is.
#[utoipa::path(patch, path = "/locker-points/{id}", tag = "places", request_body = PointChangesBody, params(("id" = Uuid, Path, description = "The locker point")), security(("bearer" = []), ("oauth2" = [])),
    responses(
    (status = 200, body = PointView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`name_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`, `invalid_address`, `parent_not_found`, `invalid_controller_url`, `controller_url_not_allowed`", body = ErrorBody),
))]
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

/// Only a point without lockers.
#[utoipa::path(delete, path = "/locker-points/{id}", tag = "places", params(("id" = Uuid, Path, description = "The locker point")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 204, description = "Deleted"),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`point_has_lockers`", body = ErrorBody),
))]
async fn delete_point(State(ctx): State<ApiContext>, AdminActor(actor): AdminActor, id: PathId) -> Result<StatusCode> {
    let Path(id) = id?;
    places::delete_point(&mut *ctx.db.acquire().await?, &actor, id).await?;
    ctx.places_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct RotatedToken {
    controller_token: String,
}

/// A new controller token; the old one stops working at once.
#[utoipa::path(post, path = "/locker-points/{id}/controller-token", tag = "controller", params(("id" = Uuid, Path, description = "The locker point")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, description = "The new token, shown once", body = RotatedToken),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
))]
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
