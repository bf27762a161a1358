//! Everything redeemed with a one-time code: contact verification, OTP login
//! and password reset. Code requests answer the same whether or not the
//! contact is known. Wrong codes count against the live code (5 tries) and the
//! guesser's IP, never against the contact; code requests count per (contact,
//! IP) under a per-contact ceiling; SMS obey a country allow-list and an
//! hourly budget. Proving a phone needs the session of the account holding it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::contact::{Contact, Email, Phone};
use lockers_core::accounts::password::{self, Password, PasswordError};
use lockers_core::accounts::sessions;
use lockers_core::accounts::users::{self, User};
use lockers_core::audit;
use lockers_core::db::During;
use lockers_core::messaging::otp::{self, Code, Purpose, Subject};
use lockers_core::messaging::outbox;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::tokens::{TokenPair, issue_tokens};
use super::{UserView, blocking, limit_ip, limited, ownership, parse_identifier};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AuthUser, Caller, ClientIp};
use lockers_core::rate_limit::{Decision, Limit};

/// Code requests per (contact, client IP), whatever the purpose and whether or
/// not the contact is known: a stranger spending this from their address
/// leaves the owner's address its own allowance.
const CODES_PER_CONTACT_AND_IP: Limit = Limit::per(5, Duration::from_secs(10 * 60));

/// Code requests per contact from all addresses: bounds what one phone (or
/// inbox) can cost. Above the 30 an hour one address can spend (6 windows of
/// 5), so no single address can reach it and hold off the owner.
const CODES_PER_CONTACT: Limit = Limit::per(40, HOUR);

/// Wrong codes per client IP (its /64 for IPv6) per hour. The guesser pays;
/// the contact never does, so a stranger cannot keep its owner out (each live
/// code also dies after 5 wrong tries, and the owner asks for a fresh one).
const WRONG_CODES_PER_IP: Limit = Limit::per(20, Duration::from_secs(60 * 60));

const HOUR: Duration = Duration::from_secs(60 * 60);

/// The limiter key of the hourly SMS budget, shared by every replica through Redis.
const SMS_BUDGET_KEY: &str = "sms_budget";

/// Counts one code request for `contact` from `ip`: per (contact, IP), then
/// (only if that allowed it, so a spent address costs the ceiling nothing)
/// against the per-contact ceiling. Before any lookup, so known and unknown
/// contacts are limited alike.
async fn limit_code_requests(ctx: &ApiContext, ip: ClientIp, contact: &Contact) -> Result<()> {
    limited(ctx.limiter.hit(&format!("codes:{contact}:{}", ip.key()), CODES_PER_CONTACT_AND_IP).await)?;
    limited(ctx.limiter.hit(&format!("codes:{contact}"), CODES_PER_CONTACT).await)
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

fn sms_budget_exhausted() -> ApiError {
    ApiError::Unavailable {
        code: "sms_budget_exhausted",
        message: "text messages are paused for now: try again later, or use your email address",
    }
}

/// Refuses SMS to phones outside `SMS_ALLOWED_COUNTRY_CODES` (SMS pumping goes
/// for expensive destinations), whether or not the phone is known.
pub fn check_sms_country(ctx: &ApiContext, phone: &Phone) -> Result<()> {
    if ctx.config.sms_allowed_country_codes.iter().any(|cc| cc.includes(phone)) {
        return Ok(());
    }
    Err(ApiError::unprocessable("phone_country_not_allowed", "text messages cannot be sent to this country"))
}

fn sms_budget(ctx: &ApiContext) -> Limit {
    Limit::per(ctx.config.sms_budget_per_hour, HOUR)
}

/// Whether this hour's SMS budget is spent (without taking from it).
async fn sms_budget_spent(ctx: &ApiContext) -> bool {
    let spent = matches!(ctx.limiter.check(SMS_BUDGET_KEY, sms_budget(ctx)).await, Decision::Limited { .. });
    if spent {
        alert_sms_budget_spent(ctx).await;
    }
    spent
}

/// Takes one SMS from this hour's budget; false when it is spent.
async fn take_sms(ctx: &ApiContext) -> bool {
    match ctx.limiter.hit(SMS_BUDGET_KEY, sms_budget(ctx)).await {
        Decision::Allowed { .. } => true,
        Decision::Limited { .. } => {
            alert_sms_budget_spent(ctx).await;
            false
        }
    }
}

/// Tells operators, once per hour (across replicas): an error-level log line
/// with a stable event name, and an audit entry admins see in `/admin/audit`.
async fn alert_sms_budget_spent(ctx: &ApiContext) {
    if ctx.limiter.hit("sms_budget_alert", Limit::per(1, HOUR)).await != (Decision::Allowed { count: 1 }) {
        return;
    }
    let budget = ctx.config.sms_budget_per_hour;
    tracing::error!(
        event = "sms_budget_exhausted",
        budget_per_hour = budget,
        "the SMS budget of this hour is spent: codes go by email where possible, phone verification answers 503"
    );
    let entry = audit::Entry {
        action: "sms.budget_exhausted",
        target_type: "sms_budget",
        target_id: None,
        before: None,
        after: Some(json!({ "budget_per_hour": budget })),
    };
    let recorded = match ctx.db.acquire().await {
        Ok(mut conn) => audit::record(&mut conn, &audit::Actor::system(), entry).await,
        Err(e) => Err(e).during("connect"),
    };
    if let Err(error) = recorded {
        tracing::warn!(%error, "could not audit the spent SMS budget");
    }
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
    let message = outbox::one_time_code(contact.clone().into(), purpose, &code);
    outbox::queue(conn, &message).await?;
    Ok(())
}

/// Signup's verification code for `contact`, issued for the new account (a
/// phone's is redeemed with that account's session), under the same limits
/// as any code request (429 when spent). A phone's SMS needs the hourly budget;
/// when it is spent the phone is left to verify later and signup goes on (its
/// email code is sent as usual).
pub async fn send_signup_code(
    conn: &mut PgConnection,
    ctx: &ApiContext,
    ip: ClientIp,
    contact: &Contact,
    user_id: Uuid,
) -> Result<()> {
    limit_code_requests(ctx, ip, contact).await?;
    if let Contact::Phone(phone) = contact {
        check_sms_country(ctx, phone)?;
        if !take_sms(ctx).await {
            return Ok(());
        }
    }
    send_code(conn, ctx, Purpose::Verify, contact, Some(user_id)).await
}

/// Sends `user` a code for `contact`. An SMS takes from the hourly budget;
/// when it is spent, a login or reset code goes to the account's email instead,
/// issued for the email (which is what it proves; it never marks the phone
/// verified), and a phone verification answers 503 (an email cannot prove a phone).
async fn deliver_code(
    conn: &mut PgConnection,
    ctx: &ApiContext,
    ip: ClientIp,
    purpose: Purpose,
    contact: &Contact,
    user: &User,
) -> Result<()> {
    if matches!(contact, Contact::Phone(_)) && !take_sms(ctx).await {
        if purpose == Purpose::Verify {
            return Err(sms_budget_exhausted());
        }
        let Ok(email) = Email::parse(&user.email).map(Contact::Email) else { return Ok(()) };
        if limit_code_requests(ctx, ip, &email).await.is_ok() {
            send_code(conn, ctx, purpose, &email, Some(user.id)).await?;
        }
        return Ok(());
    }
    send_code(conn, ctx, purpose, contact, Some(user.id)).await
}

fn accepted() -> (StatusCode, AppJson<Value>) {
    let body = json!({ "status": "accepted", "message": "If an account matches, a code is on its way." });
    (StatusCode::ACCEPTED, AppJson(body))
}

/// The answer to a phone while SMS are paused: the same for known and unknown phones.
fn accepted_by_email() -> (StatusCode, AppJson<Value>) {
    let body = json!({
        "status": "accepted",
        "channel": "email",
        "message": "Text messages are paused: if an account matches, a code is on its way to its email address; \
                    use it with that email address.",
    });
    (StatusCode::ACCEPTED, AppJson(body))
}

/// The shared flow of anonymous code requests: same answer for known and
/// unknown contacts, code requests limited per (contact, IP) and per contact,
/// SMS only to allowed countries and within the hourly budget.
async fn request_code(
    ctx: &ApiContext,
    ip: ClientIp,
    identifier: &str,
    purpose: Purpose,
    eligible: fn(&User, &Contact) -> bool,
) -> Result<(StatusCode, AppJson<Value>)> {
    limit_ip(ctx, ip).await?;
    let contact = parse_identifier(identifier)?;
    if let Contact::Phone(phone) = &contact {
        check_sms_country(ctx, phone)?;
    }
    limit_code_requests(ctx, ip, &contact).await?;
    // Decided before the account is looked up, so the answer reveals nothing about it.
    let sms_paused = matches!(contact, Contact::Phone(_)) && sms_budget_spent(ctx).await;
    if sms_paused && purpose == Purpose::Verify {
        return Err(sms_budget_exhausted());
    }
    let mut tx = ctx.db.begin().await?;
    if let Some(user) = users::by_contact(&mut tx, &contact).await?
        && !user.is_disabled()
        && eligible(&user, &contact)
    {
        deliver_code(&mut tx, ctx, ip, purpose, &contact, &user).await?;
    }
    tx.commit().await?;
    Ok(if sms_paused { accepted_by_email() } else { accepted() })
}

/// The signed-in caller, provided `phone` is their account's. Proving a phone
/// is tied to the account that asks: several accounts may hold one unverified
/// phone, and a code for it must never prove it on someone else's. The answer
/// is about the caller's own account only, so it reveals no other holder.
fn phone_holder(auth: Result<AuthUser, ApiError>, phone: &Phone) -> Result<User> {
    let AuthUser(user) = auth?;
    if user.phone.as_deref() != Some(phone.as_str()) {
        return Err(ApiError::unprocessable("phone_not_on_account", "this phone is not the one on your account"));
    }
    Ok(user)
}

/// An email's code goes to anyone who asks (whoever proves the email owns the
/// account); a phone's only to the signed-in account holding it, issued for
/// that account.
pub async fn request_verification(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    auth: Result<AuthUser, ApiError>,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    let eligible = ownership::may_request_verification;
    let Ok(Contact::Phone(phone)) = Contact::parse(&body.identifier) else {
        return request_code(&ctx, ip, &body.identifier, Purpose::Verify, eligible).await;
    };
    limit_ip(&ctx, ip).await?;
    check_sms_country(&ctx, &phone)?;
    let user = phone_holder(auth, &phone)?;
    let contact = Contact::Phone(phone);
    limit_code_requests(&ctx, ip, &contact).await?;
    if sms_budget_spent(&ctx).await {
        return Err(sms_budget_exhausted());
    }
    // Already proven (or the email not yet, which a session implies): nothing to send.
    if !user.is_disabled() && eligible(&user, &contact) {
        let mut tx = ctx.db.begin().await?;
        deliver_code(&mut tx, &ctx, ip, Purpose::Verify, &contact, &user).await?;
        tx.commit().await?;
    }
    Ok(accepted())
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
    ip: ClientIp,
    purpose: Purpose,
    contact: &Contact,
    within: Subject,
    raw_code: &str,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Subject)> {
    let wrong_key = format!("code_fail_ip:{}", ip.key());
    limited(ctx.limiter.check(&wrong_key, WRONG_CODES_PER_IP).await)?;
    let mut tx = ctx.db.begin().await?;
    let outcome = match Code::parse(raw_code) {
        Some(code) => otp::redeem(&mut tx, ctx.pepper(), purpose, contact.as_str(), within, &code).await?,
        None => Err(otp::Rejected::Wrong),
    };
    match outcome {
        Ok(subject) => Ok((tx, subject)),
        Err(_) => {
            tx.commit().await?;
            ctx.limiter.hit(&wrong_key, WRONG_CODES_PER_IP).await;
            Err(invalid_code())
        }
    }
}

/// Proves a contact. An email: anyone with its code (whoever proves the email
/// owns the account). A phone: only the signed-in account holding it, with a
/// code issued for that account.
pub async fn verify(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    auth: Result<AuthUser, ApiError>,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<UserView>> {
    limit_ip(&ctx, ip).await?;
    let contact = parse_identifier(&body.identifier)?;
    let within = match &contact {
        Contact::Phone(phone) => Subject { user_id: Some(phone_holder(auth, phone)?.id), item_id: None },
        Contact::Email(_) => Subject::default(),
    };
    let (mut tx, subject) = begin_redeemed(&ctx, ip, Purpose::Verify, &contact, within, &body.code).await?;
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
    let (mut tx, subject) = begin_redeemed(&ctx, ip, Purpose::Login, &contact, Subject::default(), &body.code).await?;
    let user = ownership::prove(&mut tx, &ctx, &actor, &contact, subject.user_id, None).await?;
    if user.is_disabled() {
        return Err(invalid_code());
    }
    let pair = issue_tokens(&mut tx, &ctx, &user).await?;
    let actor = actor.as_party(lockers_core::audit::Party::User(user.id));
    super::audit_event(&mut tx, &actor, "auth.otp_login", user.id, None).await?;
    tx.commit().await?;
    super::login::lift_password_suspension(&ctx, &user).await;
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
    let (mut tx, subject) = begin_redeemed(&ctx, ip, Purpose::Reset, &contact, Subject::default(), &body.code).await?;
    let user_id = ownership::prove(&mut tx, &ctx, &actor, &contact, subject.user_id, None).await?.id;
    users::set_password(&mut tx, user_id, &hash).await?;
    sessions::end_all(&mut tx, user_id).await?;
    let actor = actor.as_party(lockers_core::audit::Party::User(user_id));
    super::audit_event(&mut tx, &actor, "auth.password_reset", user_id, None).await?;
    let user = users::by_id(&mut tx, user_id).await?;
    tx.commit().await?;
    if let Some(user) = user {
        super::login::lift_password_suspension(&ctx, &user).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
