//! Everything redeemed with a one-time code: contact verification, OTP login
//! and password reset (the rules: `lockers_core::accounts::codes`).

use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::codes::{Accepted, CodeFlowError};
use lockers_core::accounts::password::Password;
use lockers_core::accounts::users::User;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{TokensView, UserView, parse_identifier, password_rejected};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AuthUser, Caller};

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

/// The answer to an accepted code request: the same for known and unknown contacts.
fn accepted(how: Accepted) -> (StatusCode, AppJson<Value>) {
    let body = match how {
        Accepted::AsAsked => json!({ "status": "accepted", "message": "If an account matches, a code is on its way." }),
        Accepted::ByEmail => json!({
            "status": "accepted",
            "channel": "email",
            "message": "Text messages are paused: if an account matches, a code is on its way to its email address; \
                        use it with that email address.",
        }),
    };
    (StatusCode::ACCEPTED, AppJson(body))
}

/// The caller's account when signed in; a use case that needs a session and
/// finds none answers with the session's own rejection (401 unauthorized or
/// invalid_token), as if the handler had required it.
struct MaybeSignedIn {
    user: Option<User>,
    rejection: Option<ApiError>,
}

impl MaybeSignedIn {
    fn from(auth: Result<AuthUser, ApiError>) -> Self {
        match auth {
            Ok(AuthUser(user)) => Self { user: Some(user), rejection: None },
            Err(rejection) => Self { user: None, rejection: Some(rejection) },
        }
    }

    fn error(self, e: CodeFlowError) -> ApiError {
        match (e, self.rejection) {
            (CodeFlowError::SignInRequired, Some(rejection)) => rejection,
            (e, _) => e.into(),
        }
    }
}

/// An email's code goes to anyone who asks; a phone's only to the signed-in
/// account holding it.
pub async fn request_verification(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    auth: Result<AuthUser, ApiError>,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    let caller = MaybeSignedIn::from(auth);
    match ctx.accounts.request_verification(&ctx.db, &actor, caller.user.as_ref(), &contact).await {
        Ok(how) => Ok(accepted(how)),
        Err(e) => Err(caller.error(e)),
    }
}

pub async fn request_login_code(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    Ok(accepted(ctx.accounts.request_login_code(&ctx.db, &actor, &contact).await?))
}

pub async fn request_reset(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<Value>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    Ok(accepted(ctx.accounts.request_reset_code(&ctx.db, &actor, &contact).await?))
}

/// Proves a contact: an email with anyone's code, a phone only signed in to
/// the account holding it.
pub async fn verify(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    auth: Result<AuthUser, ApiError>,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<UserView>> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    let caller = MaybeSignedIn::from(auth);
    let proven = ctx.accounts.verify(&ctx.db, &actor, caller.user.as_ref(), &contact, &body.code, body.password).await;
    match proven {
        Ok(user) => Ok(AppJson(user.into())),
        Err(e) => Err(caller.error(e)),
    }
}

/// OTP login: the code proves the contact, which is marked verified too.
pub async fn login_with_code(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<CodeBody>,
) -> Result<AppJson<TokensView>> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    let pair = ctx.accounts.login_with_code(&ctx.db, &actor, &contact, &body.code).await?;
    Ok(AppJson(pair.into()))
}

/// Sets a new password and ends every session; it does not log the user in.
pub async fn reset_password(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<ResetBody>,
) -> Result<StatusCode> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    let password = Password::parse(body.new_password).map_err(password_rejected)?;
    ctx.accounts.reset_password(&ctx.db, &actor, &contact, &body.code, password).await?;
    Ok(StatusCode::NO_CONTENT)
}
