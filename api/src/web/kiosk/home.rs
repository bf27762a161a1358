//! `GET /kiosk/{id}`: the two things a person can do here, or why not.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use uuid::Uuid;

use super::frame::{Frame, KioskQuery};
use super::screen;
use crate::ApiContext;
use crate::web::{Page, WebError};

pub async fn home(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<KioskQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::from(query), "");
    Ok(page.render("kiosk/home.html", frame.context(None, minijinja::context! {})))
}

/// A screen without this point's kiosk token: it says so and offers nothing (401).
pub fn not_set_up(page: &Page, point_id: Uuid) -> Response {
    let frame = Frame::bare(point_id, None, "");
    page.render_status(StatusCode::UNAUTHORIZED, "kiosk/not_set_up.html", frame.context(None, minijinja::context! {}))
}
