//! Token pairs: issuing, rotating, logout, and the caller's own account.

use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::sessions::{self, RefreshToken, Rotation};
use lockers_core::accounts::users::{self, User};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{UserView, limit_ip};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AuthSession, AuthUser, Caller, ClientIp};

#[derive(Debug, Serialize)]
pub struct TokenPair {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: u64,
}

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

fn invalid_refresh_token() -> ApiError {
    ApiError::AuthFailed { code: "invalid_refresh_token", message: "the refresh token is invalid, expired or used" }
}

fn access_token(ctx: &ApiContext, user: &User, session_id: Uuid) -> Result<String> {
    ctx.tokens
        .issue(user.id, user.session_epoch, session_id)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("JWT: {e}")))
}

/// Starts a session for `user` in the caller's transaction.
pub async fn issue_tokens(conn: &mut PgConnection, ctx: &ApiContext, user: &User) -> Result<TokenPair> {
    let session = sessions::start(conn, user.id, ctx.config.refresh_token_ttl).await?;
    pair(ctx, user, session.id, &session.token)
}

/// A fresh access token for `user` in session `session_id`, alongside `refresh`.
fn pair(ctx: &ApiContext, user: &User, session_id: Uuid, refresh: &RefreshToken) -> Result<TokenPair> {
    Ok(TokenPair {
        access_token: access_token(ctx, user, session_id)?,
        refresh_token: refresh.expose().to_owned(),
        token_type: "bearer",
        expires_in: ctx.tokens.ttl().as_secs(),
    })
}

/// Rotation: the old token is spent, a new pair returned. A spent token
/// presented again revokes its whole family and is audited.
pub async fn refresh(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    AppJson(body): AppJson<RefreshBody>,
) -> Result<AppJson<TokenPair>> {
    limit_ip(&ctx, ip).await?;
    let token = RefreshToken::from_client(&body.refresh_token).ok_or_else(invalid_refresh_token)?;
    let mut tx = ctx.db.begin().await?;
    match sessions::rotate(&mut tx, &token).await? {
        Rotation::Rotated { user_id, family_id, token } => {
            let user = users::by_id(&mut tx, user_id).await?.filter(|u| !u.is_disabled());
            let Some(user) = user else {
                return Err(invalid_refresh_token());
            };
            let pair = pair(&ctx, &user, family_id, &token)?;
            tx.commit().await?;
            Ok(AppJson(pair))
        }
        Rotation::Reused { user_id, family_id } => {
            let after = serde_json::json!({ "revoked_family": family_id });
            super::audit_event(&mut tx, &actor, "auth.refresh_reuse", user_id, Some(after)).await?;
            tx.commit().await?;
            tracing::warn!(%user_id, %family_id, "refresh token reused; session family revoked");
            Err(invalid_refresh_token())
        }
        Rotation::JustUsed => Err(ApiError::conflict(
            "refresh_in_progress",
            "this refresh token was just exchanged by another request; use the tokens it returned",
        )),
        Rotation::Invalid => Err(invalid_refresh_token()),
    }
}

/// Ends the caller's session (the one its access token names, whose access
/// tokens stop at once) and the session the refresh token belongs to.
/// Idempotent.
pub async fn logout(
    State(ctx): State<ApiContext>,
    AuthSession { user, session_id }: AuthSession,
    Caller(actor): Caller,
    AppJson(body): AppJson<RefreshBody>,
) -> Result<StatusCode> {
    let mut tx = ctx.db.begin().await?;
    let mut ended = sessions::end_session(&mut tx, user.id, session_id).await?;
    if let Some(token) = RefreshToken::from_client(&body.refresh_token) {
        ended |= sessions::end(&mut tx, user.id, &token).await?;
    }
    if ended {
        let actor = actor.as_party(lockers_core::audit::Party::User(user.id));
        super::audit_event(&mut tx, &actor, "auth.logout", user.id, None).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(AuthUser(user): AuthUser) -> AppJson<UserView> {
    AppJson(user.into())
}
