//! `/auth`: signup, verification, password and OTP login, token rotation,
//! logout and password reset. Each handler parses its input, calls one use
//! case of `lockers_core::accounts`, and maps its error here, once.

mod codes;
mod login;
mod signup;
mod tokens;

use chrono::{DateTime, Utc};
use lockers_core::accounts::Internal;
use lockers_core::accounts::admin::UpdateUserError;
use lockers_core::accounts::codes::CodeFlowError;
use lockers_core::accounts::contact::Contact;
use lockers_core::accounts::login::LoginError;
use lockers_core::accounts::ownership::ProofError;
use lockers_core::accounts::password::PasswordError;
use lockers_core::accounts::signup::SignupError;
use lockers_core::accounts::tokens::{AccessError, RefreshError, TokenPair};
use lockers_core::accounts::users::{Role, User};
use lockers_core::messaging::codes::{CodeError, RateLimited};
use serde::Serialize;
use uuid::Uuid;

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiContext;
use crate::error::ApiError;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(signup::signup))
        .routes(routes!(codes::request_verification))
        .routes(routes!(codes::verify))
        .routes(routes!(login::login))
        .routes(routes!(login::token_form))
        .routes(routes!(codes::request_login_code))
        .routes(routes!(codes::login_with_code))
        .routes(routes!(tokens::refresh))
        .routes(routes!(tokens::logout))
        .routes(routes!(codes::request_reset))
        .routes(routes!(codes::reset_password))
        .routes(routes!(tokens::me))
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0195f0a4-7c1e-7a51-9d1e-3f5b7c2a9e10", "name": "Asha Rao", "email": "asha@example.com",
    "phone": "+919812345678", "role": "user", "email_verified": true, "phone_verified": false, "disabled": false,
    "created_at": "2026-01-15T09:30:00Z"}))]
pub struct UserView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: Role,
    pub email_verified: bool,
    pub phone_verified: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email_verified: u.email_verified_at.is_some(),
            phone_verified: u.phone_verified_at.is_some(),
            disabled: u.disabled_at.is_some(),
            name: u.name,
            email: u.email,
            phone: u.phone,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

/// A token pair as the API hands it out (OAuth2's shape).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiJ9...", "refresh_token": "rt_3q2...", "token_type": "bearer",
    "expires_in": 900}))]
pub struct TokensView {
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: u64,
}

impl From<TokenPair> for TokensView {
    fn from(pair: TokenPair) -> Self {
        Self {
            refresh_token: pair.refresh_token.expose().to_owned(),
            access_token: pair.access_token,
            token_type: "bearer",
            expires_in: pair.expires_in.as_secs(),
        }
    }
}

fn parse_identifier(raw: &str) -> Result<Contact, ApiError> {
    Contact::parse(raw).map_err(|e| ApiError::unprocessable("invalid_identifier", e.to_string()))
}

fn password_rejected(e: PasswordError) -> ApiError {
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

fn email_not_verified() -> ApiError {
    ApiError::Refused {
        code: "email_not_verified",
        message: "this account's email is not proven yet: enter the code sent to it, or log in with an emailed code",
    }
}

impl From<RateLimited> for ApiError {
    fn from(e: RateLimited) -> Self {
        Self::TooManyRequests { retry_after_secs: e.retry_after.as_secs_f64().ceil() as u64 }
    }
}

impl From<Internal> for ApiError {
    fn from(e: Internal) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

impl From<CodeError> for ApiError {
    fn from(e: CodeError) -> Self {
        match e {
            CodeError::RateLimited(e) => e.into(),
            CodeError::CountryNotAllowed => {
                Self::unprocessable("phone_country_not_allowed", "text messages cannot be sent to this country")
            }
            CodeError::SmsBudgetExhausted => Self::Unavailable {
                code: "sms_budget_exhausted",
                message: "text messages are paused for now: try again later, or use your email address",
            },
            CodeError::InvalidCode => invalid_code(),
            CodeError::Db(e) => e.into(),
            CodeError::Enqueue(e) => e.into(),
        }
    }
}

impl From<ProofError> for ApiError {
    fn from(e: ProofError) -> Self {
        match e {
            ProofError::NoAccount => invalid_code(),
            ProofError::WrongPassword => Self::AuthFailed {
                code: "invalid_credentials",
                message: "the password given does not match the account's",
            },
            ProofError::EmailNotVerified => email_not_verified(),
            ProofError::PhoneTaken => Self::conflict("phone_taken", "another account has already proven this phone"),
            ProofError::Internal(e) => e.into(),
            ProofError::Db(e) => e.into(),
        }
    }
}

impl From<CodeFlowError> for ApiError {
    fn from(e: CodeFlowError) -> Self {
        match e {
            // Handlers that take a session answer with its own rejection instead.
            CodeFlowError::SignInRequired => Self::Unauthorized,
            CodeFlowError::PhoneNotOnAccount => {
                Self::unprocessable("phone_not_on_account", "this phone is not the one on your account")
            }
            CodeFlowError::Code(e) => e.into(),
            CodeFlowError::Proof(e) => e.into(),
            CodeFlowError::Internal(e) => e.into(),
            CodeFlowError::Db(e) => e.into(),
        }
    }
}

impl From<SignupError> for ApiError {
    fn from(e: SignupError) -> Self {
        match e {
            SignupError::EmailTaken => Self::conflict("email_taken", "an account with this email already exists"),
            SignupError::PhoneTaken => Self::conflict("phone_taken", "an account with this phone already exists"),
            SignupError::Code(e) => e.into(),
            SignupError::Internal(e) => e.into(),
            SignupError::Db(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::RateLimited(e) => e.into(),
            LoginError::Suspended { retry_after } => Self::Suspended {
                code: "password_login_suspended",
                message: "too many wrong passwords for this account: sign in with a one-time code \
                          (/auth/otp/request) or reset the password",
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            },
            LoginError::InvalidCredentials => {
                Self::AuthFailed { code: "invalid_credentials", message: "the identifier or password is wrong" }
            }
            LoginError::EmailNotVerified => email_not_verified(),
            LoginError::Internal(e) => e.into(),
            LoginError::Db(e) => e.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Invalid => Self::AuthFailed {
                code: "invalid_refresh_token",
                message: "the refresh token is invalid, expired or used",
            },
            RefreshError::InProgress => Self::conflict(
                "refresh_in_progress",
                "this refresh token was just exchanged by another request; use the tokens it returned",
            ),
            RefreshError::Internal(e) => e.into(),
            RefreshError::Db(e) => e.into(),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::InvalidToken => Self::InvalidToken,
            AccessError::Db(e) => e.into(),
        }
    }
}

impl From<UpdateUserError> for ApiError {
    fn from(e: UpdateUserError) -> Self {
        match e {
            UpdateUserError::NothingToChange => {
                Self::unprocessable("nothing_to_change", "give `role` and/or `disabled`")
            }
            UpdateUserError::CannotModifySelf => {
                Self::conflict("cannot_modify_self", "admins cannot change their own role or state")
            }
            UpdateUserError::NotFound => Self::NotFound("user"),
            UpdateUserError::Db(e) => e.into(),
        }
    }
}
