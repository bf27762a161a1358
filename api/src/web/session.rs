//! Console sessions: a cookie holding a refresh token of a session family
//! (the same families the JSON API's refresh tokens belong to). The console
//! never rotates it; it lives while the family does, so logout, a password
//! reset, disabling and reuse revocation end it (see `sessions::live`).
//!
//! The cookie is HttpOnly, SameSite=Strict, Secure in production (and then
//! named with the `__Host-` prefix, so no subdomain can plant one).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use lockers_core::accounts::sessions::{self, RefreshToken};
use lockers_core::accounts::tokens::TokenPair;
use lockers_core::accounts::users::{self, Role, User};
use lockers_core::audit::Actor;
use uuid::Uuid;

use super::WebError;
use super::i18n::cookie;
use super::page::{Page, SignedIn, cookie_value};
use crate::ApiContext;

fn name(production: bool) -> &'static str {
    if production { "__Host-lockers_session" } else { "lockers_session" }
}

/// The signed-in user of a request's session cookie, if it is live and the
/// account enabled.
pub async fn current(headers: &HeaderMap, ctx: &ApiContext) -> Result<Option<SignedIn>, WebError> {
    let Some(raw) = cookie(headers, name(ctx.config.is_production())) else {
        return Ok(None);
    };
    let Some(token) = RefreshToken::from_client(&raw) else {
        return Ok(None);
    };
    let mut conn = ctx.db.acquire().await?;
    let Some((user_id, session_id)) = sessions::live(&mut conn, &token).await? else {
        return Ok(None);
    };
    let user = users::by_session(&mut conn, user_id, session_id).await?.filter(|u| !u.is_disabled());
    Ok(user.map(|user| SignedIn { user, session_id }))
}

/// The `Set-Cookie` that starts a console session with a fresh sign-in's tokens.
pub fn start(page: &Page, pair: &TokenPair, lifetime: std::time::Duration) -> HeaderValue {
    let secure = if page.is_production() { "; Secure" } else { "" };
    cookie_value(&format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        name(page.is_production()),
        pair.refresh_token.expose(),
        lifetime.as_secs()
    ))
}

/// Ends the session of `signed_in` (its whole family) and returns the
/// `Set-Cookie` that forgets it.
pub async fn end(ctx: &ApiContext, page: &Page) -> Result<HeaderValue, WebError> {
    if let Some(signed_in) = &page.signed_in {
        let mut conn = ctx.db.acquire().await?;
        sessions::end_session(&mut conn, signed_in.user.id, signed_in.session_id).await?;
    }
    let secure = if page.is_production() { "; Secure" } else { "" };
    Ok(cookie_value(&format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}", name(page.is_production()))))
}

/// A signed-in user; signed out, the answer is a redirect to sign in and
/// back.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub page: Page,
    pub user: User,
    pub actor: Actor,
    pub session_id: Uuid,
}

impl FromRequestParts<ApiContext> for ConsoleUser {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let page = Page::from_request_parts(parts, ctx).await?;
        let Some(SignedIn { user, session_id }) = page.signed_in.clone() else {
            return Err(WebError::SignIn { next: page.path.clone() });
        };
        let actor = page.actor.clone();
        Ok(Self { page, user, actor, session_id })
    }
}

/// A signed-in admin: a user of another role gets a 403 page.
#[derive(Debug, Clone)]
pub struct ConsoleAdmin {
    pub page: Page,
    pub user: User,
    pub actor: Actor,
    pub session_id: Uuid,
}

impl FromRequestParts<ApiContext> for ConsoleAdmin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let ConsoleUser { page, user, actor, session_id } = ConsoleUser::from_request_parts(parts, ctx).await?;
        if user.role != Role::Admin {
            return Err(WebError::page(StatusCode::FORBIDDEN, "forbidden"));
        }
        Ok(Self { page, user, actor, session_id })
    }
}
