//! Refusals a person can act on, shown on the page they came from with a
//! catalogue message (`app.err_<code>`), the same codes the JSON API answers
//! with; anything else (a database fault) becomes the error page.

use axum::http::StatusCode;
use lockers_core::accounts::codes::CodeFlowError;
use lockers_core::accounts::login::LoginError;
use lockers_core::accounts::ownership::ProofError;
use lockers_core::accounts::password::PasswordError;
use lockers_core::accounts::signup::SignupError;
use lockers_core::exchange::deposit::{CancelError, DepositError, DropoffError};
use lockers_core::messaging::codes::CodeError;

use crate::error::ApiError;
use crate::web::WebError;

/// A refusal shown on the form: its status and catalogue key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub key: &'static str,
}

impl Refusal {
    pub const fn new(status: StatusCode, key: &'static str) -> Self {
        Self { status, key }
    }

    /// A field that did not parse.
    pub const fn invalid(key: &'static str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, key)
    }
}

pub const RATE_LIMITED: Refusal = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "app.err_rate_limited");
const INVALID_CODE: Refusal = Refusal::new(StatusCode::UNAUTHORIZED, "app.err_invalid_code");

/// What is not the person's to fix: the error page, as the JSON API would answer it.
fn page<E>(e: E) -> WebError
where
    ApiError: From<E>,
{
    WebError::from(ApiError::from(e))
}

pub fn password(e: PasswordError) -> Refusal {
    Refusal::invalid(match e {
        PasswordError::TooShort => "app.err_password_too_short",
        PasswordError::TooLong => "app.err_password_too_long",
        PasswordError::TooCommon => "app.err_password_too_common",
    })
}

fn code(e: &CodeError) -> Option<Refusal> {
    Some(match e {
        CodeError::RateLimited(_) => RATE_LIMITED,
        CodeError::CountryNotAllowed => Refusal::invalid("app.err_phone_country_not_allowed"),
        CodeError::SmsBudgetExhausted => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "app.err_sms_budget_exhausted"),
        CodeError::InvalidCode => INVALID_CODE,
        CodeError::Db(_) | CodeError::Enqueue(_) => return None,
    })
}

fn proof(e: &ProofError) -> Option<Refusal> {
    Some(match e {
        ProofError::NoAccount => INVALID_CODE,
        ProofError::WrongPassword => Refusal::new(StatusCode::UNAUTHORIZED, "app.err_invalid_credentials"),
        ProofError::EmailNotVerified => Refusal::new(StatusCode::FORBIDDEN, "app.err_email_not_verified"),
        ProofError::PhoneTaken => Refusal::new(StatusCode::CONFLICT, "app.err_phone_taken"),
        ProofError::Internal(_) | ProofError::Db(_) => return None,
    })
}

pub fn signup(e: SignupError) -> Result<Refusal, WebError> {
    let refusal = match &e {
        SignupError::EmailTaken => Some(Refusal::new(StatusCode::CONFLICT, "app.err_email_taken")),
        SignupError::PhoneTaken => Some(Refusal::new(StatusCode::CONFLICT, "app.err_phone_taken")),
        SignupError::Code(c) => code(c),
        SignupError::Internal(_) | SignupError::Db(_) => None,
    };
    refusal.ok_or_else(|| page(e))
}

/// Code requests, verification and code login.
pub fn code_flow(e: CodeFlowError) -> Result<Refusal, WebError> {
    let refusal = match &e {
        CodeFlowError::PhoneNotOnAccount => Some(Refusal::invalid("app.err_phone_not_on_account")),
        // A phone's code is only ever asked for from the signed-in account page.
        CodeFlowError::SignInRequired => None,
        CodeFlowError::Code(c) => code(c),
        CodeFlowError::Proof(p) => proof(p),
        CodeFlowError::Internal(_) | CodeFlowError::Db(_) => None,
    };
    refusal.ok_or_else(|| page(e))
}

pub fn login(e: LoginError) -> Result<Refusal, WebError> {
    let refusal = match &e {
        LoginError::RateLimited(_) => Some(RATE_LIMITED),
        LoginError::Suspended { .. } => {
            Some(Refusal::new(StatusCode::TOO_MANY_REQUESTS, "app.err_password_login_suspended"))
        }
        LoginError::InvalidCredentials => Some(Refusal::new(StatusCode::UNAUTHORIZED, "app.err_invalid_credentials")),
        LoginError::EmailNotVerified => Some(Refusal::new(StatusCode::FORBIDDEN, "app.err_email_not_verified")),
        LoginError::Internal(_) | LoginError::Db(_) => None,
    };
    refusal.ok_or_else(|| page(e))
}

pub fn deposit(e: DepositError) -> Result<Refusal, WebError> {
    let conflict = |key| Some(Refusal::new(StatusCode::CONFLICT, key));
    let refusal = match &e {
        DepositError::EmailNotVerified => Some(Refusal::new(StatusCode::FORBIDDEN, "app.err_email_not_verified")),
        DepositError::TooManyReservations(_) => conflict("app.err_too_many_reservations"),
        DepositError::PointNotFound | DepositError::LockerNotFound => Some(Refusal::invalid("app.err_point_not_found")),
        DepositError::PointOffline => conflict("app.err_point_offline"),
        DepositError::LockerUnavailable => conflict("app.err_locker_unavailable"),
        DepositError::NoLockerAvailable => conflict("app.err_no_locker_available"),
        DepositError::NoSender | DepositError::Exchange(_) => None,
    };
    refusal.ok_or_else(|| page(e))
}

pub fn drop_off(e: DropoffError) -> Result<Refusal, WebError> {
    let conflict = |key| Some(Refusal::new(StatusCode::CONFLICT, key));
    let refusal = match &e {
        DropoffError::NotReserved => conflict("app.err_item_not_reserved"),
        DropoffError::DeadlinePassed => conflict("app.err_dropoff_deadline_passed"),
        DropoffError::PointOffline => conflict("app.err_point_offline"),
        DropoffError::RateLimited(_) => Some(RATE_LIMITED),
        DropoffError::InvalidCode => Some(INVALID_CODE),
        DropoffError::NotFound | DropoffError::Exchange(_) => None,
    };
    refusal.ok_or_else(|| page(e))
}

pub fn cancel(e: CancelError) -> Result<Refusal, WebError> {
    let conflict = |key| Some(Refusal::new(StatusCode::CONFLICT, key));
    let refusal = match &e {
        CancelError::NotReserved => conflict("app.err_item_not_reserved"),
        CancelError::DropoffStarted => conflict("app.err_dropoff_started"),
        CancelError::NotFound | CancelError::Exchange(_) => None,
    };
    refusal.ok_or_else(|| page(e))
}
