//! Everything redeemed with a one-time code: contact verification, OTP login
//! and password reset. Code requests answer the same whether or not the
//! contact is known.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::audit;
use lockers_core::contact::Contact;
use lockers_core::notifications;
use lockers_core::otp::{self, Code, Purpose, Subject};
use lockers_core::password::{self, Password, PasswordError};
use lockers_core::sessions;
use lockers_core::users::{self, User};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::tokens::{TokenPair, issue_tokens};
use super::{UserView, blocking, limit_ip, limited, ownership, parse_identifier};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{Caller, ClientIp};
use crate::rate_limit::Limit;

/// Codes sent per contact, whatever the purpose and whether or not the contact is known.
pub const CODES_PER_CONTACT: Limit = Limit::per(5, Duration::from_secs(10 * 60));

/// Wrong codes per contact per day, across codes: with 5 tries per code and 5
/// codes per 10 minutes, this caps guessing well under NIST's 100 per account.
const WRONG_CODES_PER_CONTACT: Limit =
    Limit { max: 20, window: Duration::from_secs(24 * 60 * 60), block_from_limit: true };

pub fn per_contact_key(contact: &Contact) -> String {
    format!("codes:{contact}")
}

#[derive(Deserialize)]
pub struct IdentifierBody {
    identifier: String,
}

#[derive(Deserialize)]
pub struct CodeBody {
    identifier: String,
    code: String,
    /// Verification only: the account's password, kept when an email is first proven.
    password: Option<String>,
}

#[derive(Deserialize)]
pub struct ResetBody {
    identifier: String,
    code: String,
    new_password: String,
}

pub fn password_rejected(e: PasswordError) -> ApiError {
    let code = match e {
        PasswordError::TooShort => "password_too_short",
        PasswordError::TooLong => "password_too_long",
        PasswordError::TooCommon => "password_too_common",
    };
    ApiError::unprocessable(code, e.to_string())
}

fn invalid_code() -> ApiError {
    ApiError::AuthFailed { code: "invalid_code", message: "the code is wrong, expired or already used" }
}

/// Issues a code and queues its message, in the caller's transaction.
pub async fn send_code(
    conn: &mut PgConnection,
    ctx: &ApiContext,
    purpose: Purpose,
    contact: &Contact,
    user_id: Option<Uuid>,
) -> Result<()> {
    let subject = Subject { user_id, item_id: None };
    let code = otp::issue(conn, ctx.pepper(), purpose, contact.as_str(), subject).await?;
    let message = notifications::one_time_code(contact.clone().into(), purpose, &code);
    notifications::queue(conn, &message).await?;
    Ok(())
}

fn accepted() -> (StatusCode, AppJson<Value>) {
    let body = json!({ "status": "accepted", "message": "If an account matches, a code is on its way." });
    (StatusCode::ACCEPTED, AppJson(body))
}

/// The shared flow of every code request: same answer for known and unknown
/// contacts, at most 5 codes per contact per 10 minutes.
async fn request_code(
    ctx: &ApiContext,
    ip: ClientIp,
    identifier: &str,
    purpose: Purpose,
    eligible: fn(&User, &Contact) -> bool,
) -> Result<(StatusCode, AppJson<Value>)> {
    limit_ip(ctx, ip).await?;
    let contact = parse_identifier(identifier)?;
    limited(ctx.limiter.hit(&per_contact_key(&contact), CODES_PER_CONTACT).await)?;
    let mut tx = ctx.db.begin().await?;
    if let Some(user) = users::by_contact(&mut tx, &contact).await?
        && !user.is_disabled()
        && eligible(&user, &contact)
    {
        send_code(&mut tx, ctx, purpose, &contact, Some(user.id)).await?;
    }
    tx.commit().await?;
    Ok(accepted())
}

pub async fn request_verification(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    request_code(&ctx, ip, &body.identifier, Purpose::Verify, ownership::may_request_verification).await
}

pub async fn request_login_code(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    request_code(&ctx, ip, &body.identifier, Purpose::Login, ownership::may_request_login).await
}

pub async fn request_reset(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    request_code(&ctx, ip, &body.identifier, Purpose::Reset, ownership::may_request_login).await
}

/// Begins a transaction and redeems the code in it. On rejection the counted
/// try is committed before answering `invalid_code`, so the 5-tries rule holds.
async fn begin_redeemed(
    ctx: &ApiContext,
    purpose: Purpose,
    contact: &Contact,
    raw_code: &str,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Subject)> {
    let wrong_key = format!("code_fail:{contact}");
    limited(ctx.limiter.check(&wrong_key, WRONG_CODES_PER_CONTACT).await)?;
    let mut tx = ctx.db.begin().await?;
    let outcome = match Code::parse(raw_code) {
        Some(code) => otp::redeem(&mut tx, ctx.pepper(), purpose, contact.as_str(), None, &code).await?,
        None => Err(otp::Rejected::Wrong),
    };
    match outcome {
        Ok(subject) => Ok((tx, subject)),
        Err(_) => {
            tx.commit().await?;
            ctx.limiter.hit(&wrong_key, WRONG_CODES_PER_CONTACT).await;
            Err(invalid_code())
        }
    }
}

pub async fn verify(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<UserView>> {
    limit_ip(&ctx, ip).await?;
    let contact = parse_identifier(&body.identifier)?;
    let (mut tx, subject) = begin_redeemed(&ctx, Purpose::Verify, &contact, &body.code).await?;
    let user = ownership::prove(&mut tx, &ctx, &actor, &contact, subject.user_id, body.password).await?;
    tx.commit().await?;
    Ok(AppJson(user.into()))
}

/// OTP login: the code proves the contact, which is marked verified too.
pub async fn login_with_code(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<TokenPair>> {
    limit_ip(&ctx, ip).await?;
    let contact = parse_identifier(&body.identifier)?;
    let (mut tx, subject) = begin_redeemed(&ctx, Purpose::Login, &contact, &body.code).await?;
    let user = ownership::prove(&mut tx, &ctx, &actor, &contact, subject.user_id, None).await?;
    if user.is_disabled() {
        return Err(invalid_code());
    }
    let pair = issue_tokens(&mut tx, &ctx, &user).await?;
    let actor = audit::Actor { user_id: Some(user.id), ..actor };
    super::audit_event(&mut tx, &actor, "auth.otp_login", user.id, None).await?;
    tx.commit().await?;
    Ok(AppJson(pair))
}

/// Sets a new password and ends every session; it does not log the user in.
pub async fn reset_password(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    AppJson(body): AppJson<ResetBody>,
) -> Result<StatusCode> {
    limit_ip(&ctx, ip).await?;
    let contact = parse_identifier(&body.identifier)?;
    let password = Password::parse(body.new_password).map_err(password_rejected)?;
    let hash = blocking(&ctx, move || password::hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))?;
    let (mut tx, subject) = begin_redeemed(&ctx, Purpose::Reset, &contact, &body.code).await?;
    let user_id = ownership::prove(&mut tx, &ctx, &actor, &contact, subject.user_id, None).await?.id;
    users::set_password(&mut tx, user_id, &hash).await?;
    sessions::end_all(&mut tx, user_id).await?;
    let actor = audit::Actor { user_id: Some(user_id), ..actor };
    super::audit_event(&mut tx, &actor, "auth.password_reset", user_id, None).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
