//! Password login, as JSON and as the OAuth2 password form (for Swagger UI).

use axum::Form;
use axum::extract::State;
use lockers_core::audit;
use lockers_core::contact::Contact;
use lockers_core::password::{self, DUMMY_HASH};
use lockers_core::users;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::tokens::{TokenPair, issue_tokens};
use super::{audit_event, blocking, limit_ip, limited, ownership};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{Caller, ClientIp};
use crate::rate_limit::{Decision, Limit};

/// Failed logins per identifier before it is locked.
const MAX_FAILURES: u32 = 5;

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

/// The lockout counter of an identifier: the contact when it parses, else a
/// short hash (arbitrary client text never becomes a large key).
fn failures_key(contact: Option<&Contact>, identifier: &str) -> String {
    match contact {
        Some(contact) => format!("login_fail:{contact}"),
        None => {
            let digest = Sha256::digest(identifier.as_bytes());
            format!("login_fail:h:{}", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

/// One answer for every failure (unknown account, wrong password, disabled
/// account, malformed identifier, unproven phone); an unknown account costs
/// the same Argon2 work as a wrong password. Five failures lock the
/// identifier, known or not. The right password of an account whose email was
/// never proven answers `403 email_not_verified`.
async fn authenticate(
    ctx: &ApiContext,
    ip: ClientIp,
    actor: audit::Actor,
    identifier: &str,
    password: String,
) -> Result<TokenPair> {
    limit_ip(ctx, ip).await?;
    let contact = Contact::parse(identifier).ok();
    let failures_key = failures_key(contact.as_ref(), identifier);
    let lockout = Limit { max: MAX_FAILURES, window: ctx.config.login_lockout, block_from_limit: true };
    // Every attempt counts before the password is checked, so parallel guesses
    // cannot all slip under the limit; a success clears the count.
    let attempt = ctx.limiter.hit(&failures_key, lockout).await;
    limited(attempt)?;

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
            ctx.limiter.reset(&failures_key).await;
            Err(ownership::email_not_verified())
        }
        Some(user) if password_ok && !user.is_disabled() => {
            ctx.limiter.reset(&failures_key).await;
            let mut tx = ctx.db.begin().await?;
            let pair = issue_tokens(&mut tx, ctx, &user).await?;
            let actor = audit::Actor { user_id: Some(user.id), ..actor };
            audit_event(&mut tx, &actor, "auth.login", user.id, None).await?;
            tx.commit().await?;
            Ok(pair)
        }
        Some(user) => {
            let mut conn = ctx.db.acquire().await?;
            audit_event(&mut conn, &actor, "auth.login_failed", user.id, None).await?;
            if attempt == (Decision::Allowed { count: MAX_FAILURES }) {
                let after = serde_json::json!({ "locked_for_secs": ctx.config.login_lockout.as_secs() });
                audit_event(&mut conn, &actor, "auth.lockout", user.id, Some(after)).await?;
            }
            Err(invalid_credentials())
        }
        None => Err(invalid_credentials()),
    }
}
