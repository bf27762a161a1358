//! `/admin/places`: states and cities, created, renamed (a city also moved to
//! another state) and deleted through the use cases of `lockers_core::places`
//! (audited there), as the JSON API's `/states` and `/cities` do.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use lockers_core::places::{self, CityChanges, PlaceName};
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::listing::{self, Params};
use super::notice::Notice;
use crate::ApiContext;
use crate::error::ApiError;
use crate::web::WebError;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleAdmin;

/// States listed at once (and offered in the cities' state menus): a country's worth.
const STATES_SHOWN: i64 = 100;

pub async fn show(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    render(&ctx, &admin, &params, Notice::done(listing::field(&params, "done"))).await
}

/// The page: every state, and a page of cities (of one state with `?state_id=`).
async fn render(ctx: &ApiContext, admin: &ConsoleAdmin, params: &Params, notice: Notice) -> Result<Response, WebError> {
    let (page, state_id, notice) = match (listing::page(params), listing::id(params, "state_id")) {
        (Ok(page), Ok(state_id)) => (page, state_id, notice),
        (Err(refused), _) | (_, Err(refused)) => (listing::first_page(), None, refused),
    };
    let mut conn = ctx.db.acquire().await?;
    let (states, states_total) = places::list_states(&mut conn, STATES_SHOWN, 0).await?;
    let (cities, total) = places::list_cities(&mut conn, state_id, page.limit(), page.offset()).await?;
    let state_name = |id: Uuid| states.iter().find(|s| s.id == id).map(|s| s.name.clone()).unwrap_or_default();
    let cities: Vec<_> = cities
        .iter()
        .map(|c| context! { id => c.id.to_string(), name => &c.name, state_id => c.state_id.to_string(), state => state_name(c.state_id) })
        .collect();
    let states: Vec<_> = states.iter().map(|s| context! { id => s.id.to_string(), name => &s.name }).collect();
    let context = context! {
        section => "places",
        notice => notice.value(),
        states => states,
        more_states => states_total > STATES_SHOWN,
        cities => cities,
        state_id => state_id.map(|id| id.to_string()),
        pager => listing::pager("/admin/places", params, &["state_id"], page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/places.html", context))
}

/// After a write: back to the list with its notice, or the list drawn again with the refusal.
async fn after<T>(
    ctx: &ApiContext,
    admin: &ConsoleAdmin,
    result: Result<T, ApiError>,
    done: &str,
) -> Result<Response, WebError> {
    match result {
        Ok(_) => {
            ctx.places_changed().await;
            Ok(admin.page.redirect(&format!("/admin/places?done={done}")))
        }
        Err(error) => render(ctx, admin, &Params::new(), Notice::from_error(error)?).await,
    }
}

fn name(raw: &str) -> Result<PlaceName, ApiError> {
    PlaceName::parse(raw, PlaceName::MAX).ok_or_else(|| {
        ApiError::unprocessable("invalid_name", format!("name must be 1 to {} characters", PlaceName::MAX))
    })
}

/// A path id; a malformed one is no place at all.
pub fn path_id(raw: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(raw).map_err(|_| WebError::not_found())
}

/// A form's id field (a menu's value).
pub fn form_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw.trim()).map_err(|_| ApiError::unprocessable("parent_not_found", "choose from the list"))
}

#[derive(Deserialize)]
pub struct NameForm {
    name: String,
}

pub async fn create_state(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    let result = async {
        let name = name(&form.name)?;
        Ok::<_, ApiError>(places::create_state(&mut *ctx.db.acquire().await?, &admin.actor, name).await?)
    }
    .await;
    after(&ctx, &admin, result, "state_created").await
}

pub async fn rename_state(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<NameForm>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let result = async {
        let name = name(&form.name)?;
        Ok::<_, ApiError>(places::rename_state(&mut *ctx.db.acquire().await?, &admin.actor, id, name).await?)
    }
    .await;
    after(&ctx, &admin, result, "state_renamed").await
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn delete_state(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let result =
        async { Ok::<_, ApiError>(places::delete_state(&mut *ctx.db.acquire().await?, &admin.actor, id).await?) }.await;
    after(&ctx, &admin, result, "state_deleted").await
}

#[derive(Deserialize)]
pub struct CityForm {
    state_id: String,
    name: String,
}

pub async fn create_city(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    CsrfForm(form): CsrfForm<CityForm>,
) -> Result<Response, WebError> {
    let result = async {
        let (state_id, name) = (form_id(&form.state_id)?, name(&form.name)?);
        Ok::<_, ApiError>(places::create_city(&mut *ctx.db.acquire().await?, &admin.actor, state_id, name).await?)
    }
    .await;
    after(&ctx, &admin, result, "city_created").await
}

pub async fn update_city(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<CityForm>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let result = async {
        let changes = CityChanges { state_id: Some(form_id(&form.state_id)?), name: Some(name(&form.name)?) };
        Ok::<_, ApiError>(places::update_city(&mut *ctx.db.acquire().await?, &admin.actor, id, changes).await?)
    }
    .await;
    after(&ctx, &admin, result, "city_updated").await
}

pub async fn delete_city(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let id = path_id(&id)?;
    let result =
        async { Ok::<_, ApiError>(places::delete_city(&mut *ctx.db.acquire().await?, &admin.actor, id).await?) }.await;
    after(&ctx, &admin, result, "city_deleted").await
}
