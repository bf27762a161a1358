//! Everything redeemed with a one-time code: contact verification, OTP login
//! and password reset (the rules: `lockers_core::accounts::codes`).

use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::codes::{Accepted, CodeFlowError};
use lockers_core::accounts::password::Password;
use lockers_core::accounts::users::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{TokensView, UserView, parse_identifier, password_rejected};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AuthUser, Caller};

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"identifier": "asha@example.com"}))]
pub struct IdentifierBody {
    /// An email or an E.164 phone.
    identifier: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"identifier": "asha@example.com", "code": "123456"}))]
pub struct CodeBody {
    /// An email or an E.164 phone.
    identifier: String,
    /// The 6-digit code.
    code: String,
    /// Verification only: the account's password, kept when an email is first proven.
    password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"identifier": "asha@example.com", "code": "123456", "new_password": "another long passphrase"}))]
pub struct ResetBody {
    identifier: String,
    code: String,
    new_password: String,
}

/// The answer to a code request: the same whether or not the contact is known.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "accepted", "message": "If an account matches, a code is on its way."}))]
pub struct CodeRequested {
    /// Always `accepted`.
    status: &'static str,
    /// `email` when text messages are paused and the code went by email instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'static str>,
    message: &'static str,
}

/// The answer to an accepted code request: the same for known and unknown contacts.
fn accepted(how: Accepted) -> (StatusCode, AppJson<CodeRequested>) {
    let body = match how {
        Accepted::AsAsked => {
            CodeRequested { status: "accepted", channel: None, message: "If an account matches, a code is on its way." }
        }
        Accepted::ByEmail => CodeRequested {
            status: "accepted",
            channel: Some("email"),
            message: "Text messages are paused: if an account matches, a code is on its way to its email address; \
                      use it with that email address.",
        },
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
#[utoipa::path(post, path = "/auth/verify/request", tag = "auth", request_body = IdentifierBody,
    security((), ("bearer" = []), ("oauth2" = [])), responses(
    (status = 202, description = "Accepted, whether or not the contact is known", body = CodeRequested),
    (status = 401, description = "`unauthorized`, `invalid_token` (a phone needs its account signed in)", body = ErrorBody),
    (status = 422, description = "`invalid_identifier`, `phone_not_on_account`, `phone_country_not_allowed`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 503, description = "`sms_budget_exhausted`", body = ErrorBody),
))]
pub async fn request_verification(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    auth: Result<AuthUser, ApiError>,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<CodeRequested>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    let caller = MaybeSignedIn::from(auth);
    match ctx.accounts.request_verification(&ctx.db, &actor, caller.user.as_ref(), &contact).await {
        Ok(how) => Ok(accepted(how)),
        Err(e) => Err(caller.error(e)),
    }
}

/// Sends a login code to an account's proven contact.
#[utoipa::path(post, path = "/auth/otp/request", tag = "auth", request_body = IdentifierBody, responses(
    (status = 202, description = "Accepted, whether or not the contact is known", body = CodeRequested),
    (status = 422, description = "`invalid_identifier`, `phone_country_not_allowed`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 503, description = "`sms_budget_exhausted`", body = ErrorBody),
))]
pub async fn request_login_code(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<CodeRequested>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    Ok(accepted(ctx.accounts.request_login_code(&ctx.db, &actor, &contact).await?))
}

/// Sends a password-reset code.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = IdentifierBody, responses(
    (status = 202, description = "Accepted, whether or not the contact is known", body = CodeRequested),
    (status = 422, description = "`invalid_identifier`, `phone_country_not_allowed`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 503, description = "`sms_budget_exhausted`", body = ErrorBody),
))]
pub async fn request_reset(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<IdentifierBody>,
) -> Result<(StatusCode, AppJson<CodeRequested>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let contact = parse_identifier(&body.identifier)?;
    Ok(accepted(ctx.accounts.request_reset_code(&ctx.db, &actor, &contact).await?))
}

/// Proves a contact: an email with anyone's code, a phone only signed in to
/// the account holding it.
#[utoipa::path(post, path = "/auth/verify", tag = "auth", request_body = CodeBody,
    security((), ("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, description = "The account, contact proven", body = UserView),
    (status = 401, description = "`invalid_code`, `invalid_credentials`, `unauthorized`, `invalid_token`", body = ErrorBody),
    (status = 403, description = "`email_not_verified`", body = ErrorBody),
    (status = 409, description = "`phone_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_identifier`, `phone_not_on_account`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
))]
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
#[utoipa::path(post, path = "/auth/otp/verify", tag = "auth", request_body = CodeBody, responses(
    (status = 200, description = "Signed in", body = TokensView),
    (status = 401, description = "`invalid_code`", body = ErrorBody),
    (status = 409, description = "`phone_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_identifier`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
))]
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
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetBody, responses(
    (status = 204, description = "Password set; every session ended"),
    (status = 401, description = "`invalid_code`", body = ErrorBody),
    (status = 422, description = "`invalid_identifier`, `password_too_short`, `password_too_long`, `password_too_common`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
))]
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
