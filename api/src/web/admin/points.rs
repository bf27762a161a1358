//! `/admin/points` and `/admin/points/{id}`: locker points and their lockers.
//! Points are created, edited and deleted, lockers added, put in maintenance
//! and back, and force-cleared with a reason, through the use cases the JSON
//! API's `/locker-points`, `/admin/lockers` and force-clear routes call.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use lockers_core::billing::Tariffs;
use lockers_core::config::DoorDriver;
use lockers_core::exchange::force_clear::{self, ClearReason};
use lockers_core::places::lockers::{self, DoorNo, LockerChanges, NewLocker, Size, Status};
use lockers_core::places::overview;
use lockers_core::places::{
    self, Address, ControllerKey, ControllerUrl, ControllerUrlError, NewPoint, PlaceName, PointChanges,
};
use minijinja::{Value, context};
use serde::Deserialize;
use uuid::Uuid;

use super::listing::{self, Params};
use super::notice::Notice;
use super::places::{Empty, form_id, path_id};
use crate::ApiContext;
use crate::error::ApiError;
use crate::web::WebError;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleAdmin;

/// Cities offered in a point's city menu.
const CITIES_SHOWN: i64 = 100;

/// The sizes, by code, in the order menus offer them.
const SIZES: [(&str, Size); 4] = [("S", Size::S), ("M", Size::M), ("L", Size::L), ("XL", Size::Xl)];

fn size_code(size: Size) -> &'static str {
    SIZES.iter().find(|(_, s)| *s == size).map_or("M", |(code, _)| code)
}

fn status_code(status: Status) -> &'static str {
    match status {
        Status::Available => "available",
        Status::Reserved => "reserved",
        Status::Occupied => "occupied",
        Status::Maintenance => "maintenance",
    }
}

/// Every city (up to [`CITIES_SHOWN`]) for a menu: `{id, name}` with its state.
async fn city_menu(conn: &mut sqlx::PgConnection) -> Result<Vec<Value>, WebError> {
    let (cities, _) = places::list_cities(conn, None, CITIES_SHOWN, 0).await?;
    let (states, _) = places::list_states(conn, CITIES_SHOWN, 0).await?;
    Ok(cities
        .iter()
        .map(|c| {
            let state = states.iter().find(|s| s.id == c.state_id).map(|s| s.name.as_str()).unwrap_or_default();
            context! { id => c.id.to_string(), name => &c.name, state => state }
        })
        .collect())
}

// The list --------------------------------------------------------------------------

pub async fn list(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    render_list(&ctx, &admin, &params, Notice::done(listing::field(&params, "done"))).await
}

async fn render_list(
    ctx: &ApiContext,
    admin: &ConsoleAdmin,
    params: &Params,
    notice: Notice,
) -> Result<Response, WebError> {
    let (page, city_id, notice) = match (listing::page(params), listing::id(params, "city_id")) {
        (Ok(page), Ok(city_id)) => (page, city_id, notice),
        (Err(refused), _) | (_, Err(refused)) => (listing::first_page(), None, refused),
    };
    let (now, simulated) = (Utc::now(), ctx.config.door_driver == DoorDriver::Simulated);
    let mut conn = ctx.db.acquire().await?;
    let (points, total) = overview::lockers_by_point(&mut conn, city_id, page.limit(), page.offset()).await?;
    let points: Vec<_> = points
        .iter()
        .map(|p| {
            context! {
                id => p.point_id.to_string(), name => &p.point_name, address => &p.address,
                city => &p.city_name, state => &p.state_name, online => p.is_online(now, simulated),
                available => p.available, reserved => p.reserved, occupied => p.occupied,
                maintenance => p.maintenance, total => p.total(),
            }
        })
        .collect();
    let context = context! {
        section => "points",
        notice => notice.value(),
        points => points,
        cities => city_menu(&mut conn).await?,
        city_id => city_id.map(|id| id.to_string()),
        pager => listing::pager("/admin/points", params, &["city_id"], page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/points.html", context))
}

// Parsing, as the JSON API parses the same fields ------------------------------------

fn point_name(raw: &str) -> Result<PlaceName, ApiError> {
    PlaceName::parse(raw, PlaceName::POINT_MAX).ok_or_else(|| {
        ApiError::unprocessable("invalid_name", format!("name must be 1 to {} characters", PlaceName::POINT_MAX))
    })
}

fn address(raw: &str) -> Result<Address, ApiError> {
    Address::parse(raw).ok_or_else(|| {
        ApiError::unprocessable("invalid_address", format!("address must be 1 to {} characters", Address::MAX))
    })
}

/// A controller URL under the same SSRF rule as the API's; blank is none.
fn controller_url(ctx: &ApiContext, raw: &str) -> Result<Option<ControllerUrl>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    ControllerUrl::parse_checked(raw, places::internal_controllers_allowed(&ctx.config)).map(Some).map_err(
        |e| match e {
            ControllerUrlError::Invalid => ApiError::unprocessable("invalid_controller_url", e.to_string()),
            ControllerUrlError::Internal => ApiError::unprocessable("controller_url_not_allowed", e.to_string()),
        },
    )
}

fn door_no(raw: &str) -> Result<DoorNo, ApiError> {
    raw.trim().parse::<i32>().ok().and_then(DoorNo::parse).ok_or_else(|| {
        ApiError::unprocessable("invalid_door_no", format!("door_no must be between 1 and {}", DoorNo::MAX))
    })
}

fn size(raw: &str) -> Result<Size, ApiError> {
    SIZES
        .iter()
        .find(|(code, _)| *code == raw.trim())
        .map(|(_, size)| *size)
        .ok_or_else(|| ApiError::unprocessable("invalid_size", "choose a size from the list"))
}

#[derive(Deserialize)]
pub struct PointForm {
    city_id: String,
    name: String,
    address: String,
    #[serde(default)]
    controller_url: String,
}

/// A new point: its page, with the controller token shown this once.
pub async fn create(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    CsrfForm(form): CsrfForm<PointForm>,
) -> Result<Response, WebError> {
    let result = async {
        let new = NewPoint {
            city_id: form_id(&form.city_id)?,
            name: point_name(&form.name)?,
            address: address(&form.address)?,
            controller_url: controller_url(&ctx, &form.controller_url)?,
        };
        let key = ControllerKey::from_config(&ctx.config);
        Ok::<_, ApiError>(places::create_point(&mut *ctx.db.acquire().await?, &admin.actor, &key, new).await?)
    }
    .await;
    match result {
        Ok((point, token)) => {
            ctx.places_changed().await;
            let notice = Notice::Done("admin.done_point_created");
            render_point(&ctx, &admin, point.id, notice, Shown::ControllerToken(token.expose())).await
        }
        Err(error) => render_list(&ctx, &admin, &Params::new(), Notice::from_error(error)?).await,
    }
}

// One point -------------------------------------------------------------------------

pub async fn show(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    render_point(&ctx, &admin, path_id(&id)?, Notice::done(listing::field(&params, "done")), Shown::Nothing).await
}

/// A secret a point's page shows once, right after it was made.
enum Shown<'a> {
    Nothing,
    /// A new point's controller token.
    ControllerToken(&'a str),
    /// A screen's one-time enrolment link and when it stops working.
    Enrolment {
        url: String,
        expires_at: String,
    },
}

/// Issues a one-time enrolment link for the point's screen (the same use case
/// as `POST /api/v1/locker-points/{id}/kiosk-enrolment`), shown once: opened
/// on the screen within ten minutes, it makes that device the point's kiosk.
pub async fn enrol_screen(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let mut conn = ctx.db.acquire().await?;
    match lockers_core::places::enrolment::issue(&mut conn, &admin.actor, id).await {
        Ok(issued) => {
            drop(conn);
            let shown = Shown::Enrolment {
                url: format!("/kiosk/{id}/enrol?code={}", issued.code.display()),
                expires_at: listing::when(issued.expires_at),
            };
            render_point(&ctx, &admin, id, Notice::done(None), shown).await
        }
        Err(error) => {
            drop(conn);
            render_point(&ctx, &admin, id, Notice::from_error(ApiError::from(error))?, Shown::Nothing).await
        }
    }
}

async fn render_point(
    ctx: &ApiContext,
    admin: &ConsoleAdmin,
    id: Uuid,
    notice: Notice,
    shown: Shown<'_>,
) -> Result<Response, WebError> {
    let (controller_token, enrolment) = match &shown {
        Shown::Nothing => (None, None),
        Shown::ControllerToken(token) => (Some(*token), None),
        Shown::Enrolment { url, expires_at } => (None, Some(context! { url => url, expires_at => expires_at })),
    };
    let mut conn = ctx.db.acquire().await?;
    let point = places::point(&mut conn, id).await?.ok_or_else(WebError::not_found)?;
    let lockers: Vec<_> = overview::lockers_of_point(&mut conn, id)
        .await?
        .iter()
        .map(|l| {
            context! {
                id => l.id.to_string(), door => l.door_no, size => size_code(l.size), status => status_code(l.status),
                item_id => l.item_id.map(|i| i.to_string()), item_status => &l.item_status,
                in_use => l.status.in_use(),
            }
        })
        .collect();
    let online = point.is_online(Utc::now(), ctx.config.door_driver == DoorDriver::Simulated);
    let context = context! {
        section => "points",
        notice => notice.value(),
        controller_token => controller_token,
        enrolment => enrolment,
        point => context! {
            id => point.id.to_string(), name => &point.name, address => &point.address,
            city_id => point.city_id.to_string(), controller_url => point.controller_url.as_deref().unwrap_or_default(),
            last_heartbeat => listing::when_opt(point.last_heartbeat_at), online => online,
        },
        lockers => lockers,
        sizes => SIZES.iter().map(|(code, _)| *code).collect::<Vec<_>>(),
        cities => city_menu(&mut conn).await?,
    };
    let status = if controller_token.is_some() { axum::http::StatusCode::CREATED } else { notice.status() };
    Ok(admin.page.render_status(status, "admin/point.html", context))
}

/// After a write to point `id` (or its lockers): its page with the notice, or drawn again with the refusal.
async fn after<T>(
    ctx: &ApiContext,
    admin: &ConsoleAdmin,
    id: Uuid,
    result: Result<T, ApiError>,
    done: &str,
) -> Result<Response, WebError> {
    match result {
        Ok(_) => {
            ctx.places_changed().await;
            Ok(admin.page.redirect(&format!("/admin/points/{id}?done={done}")))
        }
        Err(error) => render_point(ctx, admin, id, Notice::from_error(error)?, Shown::Nothing).await,
    }
}

pub async fn update(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<PointForm>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let result = async {
        let changes = PointChanges {
            city_id: Some(form_id(&form.city_id)?),
            name: Some(point_name(&form.name)?),
            address: Some(address(&form.address)?),
            controller_url: Some(controller_url(&ctx, &form.controller_url)?),
        };
        Ok::<_, ApiError>(places::update_point(&mut *ctx.db.acquire().await?, &admin.actor, id, changes).await?)
    }
    .await;
    after(&ctx, &admin, id, result, "point_updated").await
}

pub async fn delete(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let result =
        async { Ok::<_, ApiError>(places::delete_point(&mut *ctx.db.acquire().await?, &admin.actor, id).await?) }.await;
    match result {
        Ok(()) => {
            ctx.places_changed().await;
            Ok(admin.page.redirect("/admin/points?done=point_deleted"))
        }
        Err(error) => render_point(&ctx, &admin, id, Notice::from_error(error)?, Shown::Nothing).await,
    }
}

// Lockers ---------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LockerForm {
    door_no: String,
    size: String,
}

pub async fn create_locker(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<LockerForm>,
) -> Result<Response, WebError> {
    let point_id = path_id(&id)?;
    let result = async {
        let new = NewLocker { point_id, door_no: door_no(&form.door_no)?, size: size(&form.size)? };
        Ok::<_, ApiError>(lockers::create(&mut *ctx.db.acquire().await?, &admin.actor, new).await?)
    }
    .await;
    after(&ctx, &admin, point_id, result, "locker_created").await
}

/// A locker's door number and size; never while an exchange holds it.
pub async fn update_locker(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<LockerForm>,
) -> Result<Response, WebError> {
    let locker_id = path_id(&id)?;
    let point_id = point_of(&ctx, locker_id).await?;
    let result = async {
        let changes =
            LockerChanges { door_no: Some(door_no(&form.door_no)?), size: Some(size(&form.size)?), status: None };
        Ok::<_, ApiError>(lockers::update(&mut *ctx.db.acquire().await?, &admin.actor, locker_id, changes).await?)
    }
    .await;
    after(&ctx, &admin, point_id, result, "locker_updated").await
}

/// Only an empty locker without history; others go to maintenance instead.
pub async fn delete_locker(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let locker_id = path_id(&id)?;
    let point_id = point_of(&ctx, locker_id).await?;
    let result =
        async { Ok::<_, ApiError>(lockers::delete(&mut *ctx.db.acquire().await?, &admin.actor, locker_id).await?) }
            .await;
    after(&ctx, &admin, point_id, result, "locker_deleted").await
}

/// The point a locker stands at (its page is where the locker's forms answer).
async fn point_of(ctx: &ApiContext, locker_id: Uuid) -> Result<Uuid, WebError> {
    let locker = lockers::by_id(&mut *ctx.db.acquire().await?, locker_id).await?.ok_or_else(WebError::not_found)?;
    Ok(locker.point_id)
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

/// Maintenance on (`status=maintenance`) or off (`status=available`).
pub async fn set_status(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<StatusForm>,
) -> Result<Response, WebError> {
    let locker_id = path_id(&id)?;
    let point_id = point_of(&ctx, locker_id).await?;
    let (status, done) = match form.status.as_str() {
        "maintenance" => (Status::Maintenance, "maintenance_on"),
        "available" => (Status::Available, "maintenance_off"),
        _ => return Err(WebError::bad_form()),
    };
    let changes = LockerChanges { status: Some(status), ..LockerChanges::default() };
    let result = async {
        Ok::<_, ApiError>(lockers::update(&mut *ctx.db.acquire().await?, &admin.actor, locker_id, changes).await?)
    }
    .await;
    after(&ctx, &admin, point_id, result, done).await
}

#[derive(Deserialize)]
pub struct ForceClearForm {
    #[serde(default)]
    reason: String,
}

/// Opens the locker's door for staff; the item inside is removed when it does.
pub async fn force_clear(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ForceClearForm>,
) -> Result<Response, WebError> {
    let locker_id = path_id(&id)?;
    let point_id = point_of(&ctx, locker_id).await?;
    let result = async {
        let reason = ClearReason::parse(&form.reason)
            .ok_or_else(|| ApiError::unprocessable("invalid_reason", "reason must be 1 to 500 characters"))?;
        let tariffs = Tariffs::from_config(&ctx.config);
        let mut conn = ctx.db.acquire().await?;
        Ok::<_, ApiError>(force_clear::request(&mut conn, &admin.actor, &tariffs, locker_id, reason).await?)
    }
    .await;
    after(&ctx, &admin, point_id, result, "force_clear").await
}
