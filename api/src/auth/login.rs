//! Password login, as JSON and as the OAuth2 password form (for Swagger UI).

use axum::Form;
use axum::extract::State;
use serde::Deserialize;

use super::TokensView;
use crate::ApiContext;
use utoipa::ToSchema;

use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::Caller;

#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"identifier": "asha@example.com", "password": "a long passphrase"}))]
pub struct LoginBody {
    /// An email or an E.164 phone.
    identifier: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TokenForm {
    /// An email or an E.164 phone.
    username: String,
    password: String,
    /// `password` when given.
    grant_type: Option<String>,
}

/// Password login (needs a proven email).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, description = "Signed in", body = TokensView),
    (status = 401, description = "`invalid_credentials`", body = ErrorBody),
    (status = 403, description = "`email_not_verified`", body = ErrorBody),
    (status = 429, description = "`rate_limited`, `password_login_suspended` (with Retry-After)", body = ErrorBody),
))]
pub async fn login(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    AppJson(body): AppJson<LoginBody>,
) -> Result<AppJson<TokensView>> {
    ctx.accounts.limit_ip(&actor).await?;
    let pair = ctx.accounts.login(&ctx.db, &actor, &body.identifier, body.password).await?;
    Ok(AppJson(pair.into()))
}

/// The OAuth2 password grant, as a form: what Swagger UI's Authorize uses.
#[utoipa::path(post, path = "/auth/token", tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"), responses(
    (status = 200, description = "Signed in", body = TokensView),
    (status = 400, description = "`unsupported_grant_type`", body = ErrorBody),
    (status = 401, description = "`invalid_credentials`", body = ErrorBody),
    (status = 403, description = "`email_not_verified`", body = ErrorBody),
    (status = 429, description = "`rate_limited`, `password_login_suspended` (with Retry-After)", body = ErrorBody),
))]
pub async fn token_form(
    State(ctx): State<ApiContext>,
    Caller(actor): Caller,
    form: std::result::Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<AppJson<TokensView>> {
    let Form(form) = form?;
    if form.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(ApiError::bad_request("unsupported_grant_type", "only grant_type=password is supported"));
    }
    ctx.accounts.limit_ip(&actor).await?;
    let pair = ctx.accounts.login(&ctx.db, &actor, &form.username, form.password).await?;
    Ok(AppJson(pair.into()))
}
