use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::contact::{Email, Phone};
use lockers_core::accounts::password::Password;
use lockers_core::accounts::signup::NewAccount;
use lockers_core::accounts::users::Name;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{UserView, password_rejected};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::Caller;

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"name": "Asha Rao", "email": "asha@example.com", "phone": "+919812345678", "password": "a long passphrase"}))]
pub struct SignupBody {
    name: String,
    email: String,
    phone: Option<String>,
    password: String,
}

/// Creates an account and sends verification codes to its email (and phone).
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupBody, responses(
    (status = 201, description = "The account, not verified yet", body = UserView),
    (status = 409, description = "`email_taken`, `phone_taken`", body = ErrorBody),
    (status = 422, description = "`invalid_name`, `invalid_email`, `invalid_phone`, `password_too_short`, \
        `password_too_long`, `password_too_common`, `phone_country_not_allowed`", body = ErrorBody),
    (status = 429, description = "`rate_limited` (with Retry-After)", body = ErrorBody),
    (status = 503, description = "`sms_budget_exhausted`", body = ErrorBody),
))]
pub async fn signup(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<SignupBody>,
) -> Result<(StatusCode, AppJson<UserView>)> {
    ctx.accounts.limit_ip(&actor).await?;
    let name = Name::parse(&body.name)
        .ok_or_else(|| ApiError::unprocessable("invalid_name", "name must be 1 to 100 characters"))?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?;
    let phone = match body.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => Some(Phone::parse(raw).map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?),
        None => None,
    };
    let password = Password::parse(body.password).map_err(password_rejected)?;
    let user = ctx.accounts.signup(&ctx.db, &actor, NewAccount { name, email, phone, password }).await?;
    Ok((StatusCode::CREATED, AppJson(user.into())))
}
