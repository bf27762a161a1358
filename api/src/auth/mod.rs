//! `/auth`: signup, verification, password and OTP login, token rotation,
//! logout and password reset.

mod codes;
mod login;
mod ownership;
mod signup;
mod tokens;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use lockers_core::accounts::contact::Contact;
use lockers_core::accounts::users::{Role, User};
use serde::Serialize;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::ApiError;
use crate::extract::ClientIp;
use lockers_core::rate_limit::{Decision, Limit};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/auth/signup", post(signup::signup))
        .route("/auth/verify/request", post(codes::request_verification))
        .route("/auth/verify", post(codes::verify))
        .route("/auth/login", post(login::login))
        .route("/auth/token", post(login::token_form))
        .route("/auth/otp/request", post(codes::request_login_code))
        .route("/auth/otp/verify", post(codes::login_with_code))
        .route("/auth/refresh", post(tokens::refresh))
        .route("/auth/logout", post(tokens::logout))
        .route("/auth/password/forgot", post(codes::request_reset))
        .route("/auth/password/reset", post(codes::reset_password))
        .route("/auth/me", get(tokens::me))
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: Role,
    pub email_verified: bool,
    pub phone_verified: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email_verified: u.email_verified_at.is_some(),
            phone_verified: u.phone_verified_at.is_some(),
            disabled: u.disabled_at.is_some(),
            name: u.name,
            email: u.email,
            phone: u.phone,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

/// Unauthenticated `/auth` calls per client IP.
fn ip_limit(ctx: &ApiContext) -> Limit {
    Limit::per(ctx.config.auth_ip_limit_per_min, Duration::from_secs(60))
}

/// Counts one unauthenticated `/auth` call against the caller's IP.
async fn limit_ip(ctx: &ApiContext, ip: ClientIp) -> Result<(), ApiError> {
    limited(ctx.limiter.hit(&format!("auth_ip:{}", ip.key()), ip_limit(ctx)).await)
}

fn limited(decision: Decision) -> Result<(), ApiError> {
    match decision {
        Decision::Allowed { .. } => Ok(()),
        Decision::Limited { retry_after } => {
            Err(ApiError::TooManyRequests { retry_after_secs: retry_after.as_secs_f64().ceil() as u64 })
        }
    }
}

fn parse_identifier(raw: &str) -> Result<Contact, ApiError> {
    Contact::parse(raw).map_err(|e| ApiError::unprocessable("invalid_identifier", e.to_string()))
}

/// Runs Argon2 off the async runtime, one hash per core at a time.
async fn blocking<T: Send + 'static>(ctx: &ApiContext, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let _permit =
        ctx.hashing.acquire().await.map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing closed: {e}")))?;
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing task failed: {e}")))
}

/// Records a security event about `user_id` (the shared audit writer, user-targeted).
async fn audit_event(
    conn: &mut sqlx::PgConnection,
    actor: &lockers_core::audit::Actor,
    action: &str,
    user_id: Uuid,
    after: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    crate::audit_log::record(conn, actor, action, "user", user_id, None::<&()>, after.as_ref()).await
}
