//! The kiosk's credential: the point's kiosk token, kept by the screen in an
//! HttpOnly, SameSite=Strict cookie scoped to its own `/kiosk/{id}` (Secure
//! in production), set once when an admin's enrolment code is redeemed
//! ([`super::enrol`]). A request without it (or with an old one, or another
//! point's) gets the "not set up" page.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use lockers_core::config::DoorDriver;
use lockers_core::places::{self, LockerPoint, credentials};
use uuid::Uuid;

use super::frame::Notice;
use crate::ApiContext;
use crate::web::WebError;
use crate::web::page::cookie_value;

/// The cookie's name.
const COOKIE_NAME: &str = "lockers_kiosk";

/// A screen keeps its enrolment until an admin enrols another one: 400
/// days, the longest a browser keeps a cookie.
const COOKIE_MAX_AGE_SECS: u64 = 400 * 24 * 60 * 60;

/// An enrolled point's screen, as its pages need it.
pub struct Screen {
    pub point: LockerPoint,
    /// Under simulated doors every point is online (`places::is_online`).
    pub online: bool,
}

impl Screen {
    /// What the screen says while its point is offline.
    pub fn offline_notice(&self) -> Option<Notice> {
        (!self.online).then_some(Notice::Offline)
    }
}

/// The point of a `/kiosk/{id}` path; a malformed id is a 404 page.
pub fn point_id(path: Result<Path<Uuid>, PathRejection>) -> Result<Uuid, WebError> {
    path.map(|Path(id)| id).map_err(|_| WebError::not_found())
}

/// The screen of `point_id` when the request holds its kiosk token; `None`
/// when it holds none, an old one or another point's.
pub async fn enrolled(ctx: &ApiContext, headers: &HeaderMap, point_id: Uuid) -> Result<Option<Screen>, WebError> {
    let Some(token) = crate::web::i18n::cookie(headers, COOKIE_NAME) else { return Ok(None) };
    let mut conn = ctx.db.acquire().await?;
    if credentials::point_of_kiosk(&mut conn, &token).await? != Some(point_id) {
        return Ok(None);
    }
    let Some(point) = places::point(&mut conn, point_id).await? else { return Ok(None) };
    let online = point.is_online(Utc::now(), ctx.config.door_driver == DoorDriver::Simulated);
    Ok(Some(Screen { point, online }))
}

/// The `Set-Cookie` that keeps `token` on this screen, for this point's pages only.
pub fn keep(production: bool, point_id: Uuid, token: &str) -> HeaderValue {
    let secure = if production { "; Secure" } else { "" };
    cookie_value(&format!(
        "{COOKIE_NAME}={token}; Path=/kiosk/{point_id}; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Strict{secure}"
    ))
}
