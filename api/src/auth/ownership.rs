//! Account ownership: whoever proves an email owns the account (DESIGN.md,
//! Accounts). Every path that redeems a code for a contact (verification,
//! code login, password reset) goes through `prove`, so none of them can hand
//! an account to whoever typed its email first.

use lockers_core::accounts::contact::Contact;
use lockers_core::accounts::password;
use lockers_core::accounts::users::{self, EmailProof, PhoneProof, User};
use lockers_core::audit::Actor;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit_event, blocking};
use crate::ApiContext;
use crate::error::{ApiError, Result};

pub fn email_not_verified() -> ApiError {
    ApiError::Refused {
        code: "email_not_verified",
        message: "this account's email is not proven yet: enter the code sent to it, or log in with an emailed code",
    }
}

fn invalid_code() -> ApiError {
    ApiError::AuthFailed { code: "invalid_code", message: "the code is wrong, expired or already used" }
}

/// Whether a verification code may be sent for `contact` of `user`: an email
/// until proven; a phone only on an account whose email is proven (before
/// that, the account has no owner to give the phone to).
pub fn may_request_verification(user: &User, contact: &Contact) -> bool {
    match contact {
        Contact::Email(_) => user.email_verified_at.is_none(),
        Contact::Phone(_) => user.phone_verified_at.is_none() && user.email_verified_at.is_some(),
    }
}

/// Whether a login or reset code may be sent for `contact` of `user`: any
/// email (redeeming the code proves it), but only a proven phone, since an
/// unverified phone may be held by several accounts and names none of them.
pub fn may_request_login(user: &User, contact: &Contact) -> bool {
    match contact {
        Contact::Email(_) => true,
        Contact::Phone(_) => user.phone_verified_at.is_some(),
    }
}

/// Whether `contact` identifies `user` for a password login: an email always,
/// a phone only once proven.
pub fn identifies_for_login(user: &User, contact: &Contact) -> bool {
    !matches!(contact, Contact::Phone(_)) || user.phone_verified_at.is_some()
}

/// Applies a redeemed code for `contact`, issued to `user_id`, in the
/// redeeming transaction, and returns the account. Proving an email for the
/// first time ends every password, phone and session set before, except when
/// the prover also gives the signup password (`password`): then they are
/// whoever signed up, and the password and phone given then stay.
/// A wrong `password` is refused (401 `invalid_credentials`) and, since the
/// caller then drops the transaction, leaves the code live.
pub async fn prove(
    conn: &mut PgConnection,
    ctx: &ApiContext,
    actor: &Actor,
    contact: &Contact,
    user_id: Option<Uuid>,
    password: Option<String>,
) -> Result<User> {
    let user_id = user_id.ok_or_else(invalid_code)?;
    let actor = actor.as_party(lockers_core::audit::Party::User(user_id));
    match contact {
        Contact::Email(email) => {
            // Locked, so the password checked below is the one the proof keeps.
            let user = users::lock(conn, user_id).await?.ok_or_else(invalid_code)?;
            let knows_password = match (password, user.password_hash.clone(), user.email_verified_at) {
                (Some(given), Some(hash), None) => {
                    // Longer inputs cannot be a valid password; refusing them spares the hasher.
                    let ok = given.len() <= 1024 && blocking(ctx, move || password::verify(&given, &hash)).await?;
                    if !ok {
                        return Err(ApiError::AuthFailed {
                            code: "invalid_credentials",
                            message: "the password given does not match the account's",
                        });
                    }
                    true
                }
                _ => false,
            };
            match users::prove_email(conn, user_id, email, knows_password).await?.ok_or_else(invalid_code)? {
                EmailProof::Claimed(user) => {
                    let after = json!({ "password_and_phone_kept": knows_password, "sessions_revoked": true });
                    audit_event(conn, &actor, "auth.email_proven", user_id, Some(after)).await?;
                    Ok(user)
                }
                EmailProof::AlreadyProven(user) => Ok(user),
            }
        }
        Contact::Phone(phone) => match users::prove_phone(conn, user_id, phone).await?.ok_or_else(invalid_code)? {
            PhoneProof::Proven { user, taken_from } => {
                if taken_from > 0 {
                    let after = json!({ "taken_from_unverified_holders": taken_from });
                    audit_event(conn, &actor, "auth.phone_proven", user_id, Some(after)).await?;
                }
                Ok(user)
            }
            PhoneProof::EmailNotProven => Err(email_not_verified()),
            PhoneProof::Taken => {
                Err(ApiError::conflict("phone_taken", "another account has already proven this phone"))
            }
        },
    }
}
