//! Token rotation, logout, and the caller's own account.

use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::sessions::RefreshToken;
use lockers_core::accounts::tokens::{self, RefreshError};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{TokensView, UserView};
use crate::ApiContext;
use crate::error::{AppJson, ErrorBody, Result};
use crate::extract::{AuthSession, AuthUser, Caller};

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "rt_3q2..."}))]
pub struct RefreshBody {
    refresh_token: String,
}

/// Rotation: the old token is spent, a new pair returned. A spent token
/// presented again revokes its whole family and is audited.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody, responses(
    (status = 200, description = "A new pair", body = TokensView),
    (status = 401, description = "`invalid_refresh_token`", body = ErrorBody),
    (status = 409, description = "`refresh_in_progress`: a racing duplicate within 2 s", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
))]
pub async fn refresh(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<RefreshBody>,
) -> Result<AppJson<TokensView>> {
    ctx.accounts.limit_ip(&actor).await?;
    let token = RefreshToken::from_client(&body.refresh_token).ok_or(RefreshError::Invalid)?;
    let pair = ctx.accounts.refresh(&mut *ctx.db.acquire().await?, &actor, &token).await?;
    Ok(AppJson(pair.into()))
}

/// Ends the caller's session (the one its access token names, whose access
/// tokens stop at once) and the session the refresh token belongs to.
/// Idempotent.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshBody,
    security(("bearer" = []), ("oauth2" = [])), responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(ctx): State<ApiContext>,
    AuthSession(session): AuthSession,
    Caller(actor): Caller,
    AppJson(body): AppJson<RefreshBody>,
) -> Result<StatusCode> {
    let refresh = RefreshToken::from_client(&body.refresh_token);
    tokens::logout(&mut *ctx.db.acquire().await?, &actor, &session, refresh.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = []), ("oauth2" = [])),
    responses((status = 200, body = UserView)))]
pub async fn me(AuthUser(user): AuthUser) -> AppJson<UserView> {
    AppJson(user.into())
}
