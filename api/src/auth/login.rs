//! Password login, as JSON and as the OAuth2 password form (for Swagger UI).

use axum::Form;
use axum::extract::State;
use serde::Deserialize;

use super::TokensView;
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::Caller;

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
    Caller(actor): Caller,
    AppJson(body): AppJson<LoginBody>,
) -> Result<AppJson<TokensView>> {
    ctx.accounts.limit_ip(&actor).await?;
    let pair = ctx.accounts.login(&ctx.db, &actor, &body.identifier, body.password).await?;
    Ok(AppJson(pair.into()))
}

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
