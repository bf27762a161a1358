//! Password login, as JSON and as the OAuth2 password form (for Swagger UI).

use std::time::Duration;

use axum::Form;
use axum::extract::State;
use lockers_core::accounts::contact::Contact;
use lockers_core::accounts::password::{self, DUMMY_HASH};
use lockers_core::accounts::users;
use lockers_core::audit;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::tokens::{TokenPair, issue_tokens};
use super::{audit_event, blocking, limit_ip, limited, ownership};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{Caller, ClientIp};
use lockers_core::rate_limit::{Backoff, Decision, Limit};

/// Password tries for one identifier from one client before each next try waits.
const FREE_TRIES_PER_CLIENT: u32 = 5;

/// Failed passwords per identifier, from anywhere, before password login for it
/// is suspended (NIST SP 800-63B: at most 100 consecutive failures); a code
/// login or a password reset lifts it, and a success starts the count afresh.
const FAILURES_PER_IDENTIFIER: Limit =
    Limit { max: 100, window: Duration::from_secs(24 * 60 * 60), block_from_limit: false };

/// Longer inputs cannot be a valid password; refusing them spares the hasher.
const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
pub struct LoginBody {
    identifier: String,
    password: String,
}

#[derive(Deserialize)]
pub struct TokenForm {
    username: String,
    password: String,
    grant_type: Option<String>,
}

pub async fn login(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    AppJson(body): AppJson<LoginBody>,
) -> Result<AppJson<TokenPair>> {
    authenticate(&ctx, ip, actor, &body.identifier, body.password).await.map(AppJson)
}

pub async fn token_form(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    form: std::result::Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<AppJson<TokenPair>> {
    let Form(form) = form?;
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::bad_request("unsupported_grant_type", "only grant_type=password is supported"));
    }
    authenticate(&ctx, ip, actor, &form.username, form.password).await.map(AppJson)
}

fn invalid_credentials() -> ApiError {
    ApiError::AuthFailed { code: "invalid_credentials", message: "the identifier or password is wrong" }
}

/// How an identifier is named in limit keys: the contact when it parses, else
/// a short hash (arbitrary client text never becomes a large key).
fn identifier_key(contact: Option<&Contact>, identifier: &str) -> String {
    match contact {
        Some(contact) => contact.to_string(),
        None => {
            let digest = Sha256::digest(identifier.as_bytes());
            format!("h:{}", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

fn failures_key(identifier_key: &str) -> String {
    format!("pw_fail:{identifier_key}")
}

/// Lifts a suspension of password login for `user`'s contacts: a code login or
/// a password reset proved the person holds them.
pub async fn lift_password_suspension(ctx: &ApiContext, user: &users::User) {
    for contact in [Some(user.email.as_str()), user.phone.as_deref()].into_iter().flatten() {
        if let Ok(contact) = Contact::parse(contact) {
            ctx.limiter.reset(&failures_key(&identifier_key(Some(&contact), contact.as_str()))).await;
        }
    }
}

fn password_login_suspended(retry_after: Duration) -> ApiError {
    ApiError::Suspended {
        code: "password_login_suspended",
        message: "too many wrong passwords for this account: sign in with a one-time code \
                  (/auth/otp/request) or reset the password",
        retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
    }
}

/// The limits on password tries, so that nobody can lock anyone else out:
/// per identifier and client IP, 5 free tries and then a wait doubling from
/// 1 s up to `LOGIN_LOCKOUT_SECS` (the owner on another address is never
/// slowed); per identifier, 100 failures suspend password login (code login
/// still works). Both answer the same for known and unknown identifiers.
struct Throttle {
    client_key: String,
    failures_key: String,
}

impl Throttle {
    /// Refuses while suspended or while this client's wait runs; otherwise
    /// counts the try before the password is checked, so parallel guesses
    /// cannot slip past the wait.
    async fn admit(ctx: &ApiContext, ip: ClientIp, contact: Option<&Contact>, identifier: &str) -> Result<Self> {
        let id = identifier_key(contact, identifier);
        let throttle = Self { client_key: format!("pw_client:{id}:{}", ip.key()), failures_key: failures_key(&id) };
        if let Decision::Limited { retry_after } =
            ctx.limiter.check(&throttle.failures_key, FAILURES_PER_IDENTIFIER).await
        {
            return Err(password_login_suspended(retry_after));
        }
        let backoff = Backoff {
            free: FREE_TRIES_PER_CLIENT,
            base: Duration::from_secs(1),
            cap: ctx.config.login_lockout,
            memory: FAILURES_PER_IDENTIFIER.window,
        };
        limited(ctx.limiter.attempt(&throttle.client_key, backoff).await)?;
        Ok(throttle)
    }

    async fn succeeded(&self, ctx: &ApiContext) {
        ctx.limiter.reset(&self.client_key).await;
        ctx.limiter.reset(&self.failures_key).await;
    }

    /// Counts a failure; the one that reaches the cap is audited for a known account.
    async fn failed(&self, ctx: &ApiContext, actor: &audit::Actor, user_id: Option<uuid::Uuid>) -> Result<()> {
        let failures = ctx.limiter.hit(&self.failures_key, FAILURES_PER_IDENTIFIER).await;
        if failures == (Decision::Allowed { count: FAILURES_PER_IDENTIFIER.max }) {
            tracing::warn!(event = "password_login_suspended", "password login suspended after 100 failures");
            if let Some(user_id) = user_id {
                let mut conn = ctx.db.acquire().await?;
                audit_event(&mut conn, actor, "auth.password_login_suspended", user_id, None).await?;
            }
        }
        Ok(())
    }
}

/// One answer for every failure (unknown account, wrong password, disabled
/// account, malformed identifier, unproven phone); an unknown account costs
/// the same Argon2 work as a wrong password. Tries are limited by
/// [`Throttle`]. The right password of an account whose email was never
/// proven answers `403 email_not_verified`.
async fn authenticate(
    ctx: &ApiContext,
    ip: ClientIp,
    actor: audit::Actor,
    identifier: &str,
    password: String,
) -> Result<TokenPair> {
    limit_ip(ctx, ip).await?;
    let contact = Contact::parse(identifier).ok();
    let throttle = Throttle::admit(ctx, ip, contact.as_ref(), identifier).await?;

    let user = match &contact {
        Some(contact) => users::by_contact(&mut *ctx.db.acquire().await?, contact)
            .await?
            .filter(|u| ownership::identifies_for_login(u, contact)),
        None => None,
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_owned());
    let password_ok =
        password.len() <= MAX_PASSWORD_BYTES && blocking(ctx, move || password::verify(&password, &hash)).await?;

    match user {
        // Only after the password proved right, so this cannot reveal accounts.
        Some(user) if password_ok && !user.is_disabled() && user.email_verified_at.is_none() => {
            throttle.succeeded(ctx).await;
            Err(ownership::email_not_verified())
        }
        Some(user) if password_ok && !user.is_disabled() => {
            throttle.succeeded(ctx).await;
            let mut tx = ctx.db.begin().await?;
            let pair = issue_tokens(&mut tx, ctx, &user).await?;
            let actor = actor.as_party(lockers_core::audit::Party::User(user.id));
            audit_event(&mut tx, &actor, "auth.login", user.id, None).await?;
            tx.commit().await?;
            Ok(pair)
        }
        Some(user) => {
            audit_event(&mut *ctx.db.acquire().await?, &actor, "auth.login_failed", user.id, None).await?;
            throttle.failed(ctx, &actor, Some(user.id)).await?;
            Err(invalid_credentials())
        }
        None => {
            throttle.failed(ctx, &actor, None).await?;
            Err(invalid_credentials())
        }
    }
}
