use axum::extract::State;
use axum::http::StatusCode;
use lockers_core::accounts::contact::{Contact, Email, Phone};
use lockers_core::accounts::password::{self, Password};
use lockers_core::accounts::users::{self, Name, NewUser, UserError};
use serde::Deserialize;

use super::{UserView, audit_event, blocking, codes, limit_ip};
use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{Caller, ClientIp};

#[derive(Deserialize)]
pub struct SignupBody {
    name: String,
    email: String,
    phone: Option<String>,
    password: String,
}

/// Creates an account and sends verification codes to its email (and phone).
pub async fn signup(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    Caller(actor): Caller,
    AppJson(body): AppJson<SignupBody>,
) -> Result<(StatusCode, AppJson<UserView>)> {
    limit_ip(&ctx, ip).await?;
    let name = Name::parse(&body.name)
        .ok_or_else(|| ApiError::unprocessable("invalid_name", "name must be 1 to 100 characters"))?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::unprocessable("invalid_email", e.to_string()))?;
    let phone = match body.phone.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(raw) => Some(Phone::parse(raw).map_err(|e| ApiError::unprocessable("invalid_phone", e.to_string()))?),
        None => None,
    };
    if let Some(phone) = &phone {
        codes::check_sms_country(&ctx, phone)?;
    }
    let password = Password::parse(body.password).map_err(codes::password_rejected)?;
    let hash = blocking(&ctx, move || password::hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing failed: {e}")))?;

    let mut tx = ctx.db.begin().await?;
    let new = NewUser { name: &name, email: &email, phone: phone.as_ref(), password_hash: &hash };
    let user = users::insert(&mut tx, new).await.map_err(|e| match e {
        UserError::EmailTaken => ApiError::conflict("email_taken", "an account with this email already exists"),
        UserError::PhoneTaken => ApiError::conflict("phone_taken", "an account with this phone already exists"),
        UserError::Database(e) => e.into(),
    })?;
    let mut contacts = vec![Contact::Email(email)];
    contacts.extend(phone.map(Contact::Phone));
    for contact in &contacts {
        codes::send_signup_code(&mut tx, &ctx, ip, contact, user.id).await?;
    }
    let actor = actor.as_party(lockers_core::audit::Party::User(user.id));
    audit_event(&mut tx, &actor, "auth.signup", user.id, None).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(user.into())))
}
