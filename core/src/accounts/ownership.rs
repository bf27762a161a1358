//! Account ownership: whoever proves an email owns the account (DESIGN.md,
//! Accounts). Every path that redeems a code for a contact (verification,
//! code login, password reset) goes through [`Accounts::prove`], so none of
//! them can hand an account to whoever typed its email first.

use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::contact::Contact;
use super::users::{self, EmailProof, PhoneProof, User};
use super::{Accounts, Internal, audit_user};
use crate::audit::{Actor, Party};
use crate::db::{DbError, During};

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

/// Why a redeemed code proved nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The code names no account (any more) holding the contact.
    #[error("the code is wrong, expired or already used")]
    NoAccount,
    /// The password given along does not match the account's.
    #[error("the password given does not match the account's")]
    WrongPassword,
    /// A phone cannot be proven before the account's email.
    #[error("this account's email is not proven yet")]
    EmailNotVerified,
    /// Another account proved this phone first.
    #[error("another account has already proven this phone")]
    PhoneTaken,
    #[error(transparent)]
    Internal(#[from] Internal),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Accounts {
    /// Applies a redeemed code for `contact`, issued to `user_id`, in the
    /// redeeming transaction, and returns the account. Proving an email for
    /// the first time ends every password, phone and session set before,
    /// except when the prover also gives the signup password (`password`):
    /// then they are whoever signed up, and the password and phone given then
    /// stay. A wrong `password` is refused and, since the caller then drops
    /// the transaction, leaves the code live.
    pub async fn prove(
        &self,
        conn: &mut PgConnection,
        by: &Actor,
        contact: &Contact,
        user_id: Option<Uuid>,
        password: Option<String>,
    ) -> Result<User, ProofError> {
        let user_id = user_id.ok_or(ProofError::NoAccount)?;
        let by = by.as_party(Party::User(user_id));
        match contact {
            Contact::Email(email) => {
                // Locked, so the password checked below is the one the proof keeps.
                let user = users::lock(conn, user_id).await.during("lock a user")?.ok_or(ProofError::NoAccount)?;
                let knows_password = match (password, user.password_hash.clone(), user.email_verified_at) {
                    (Some(given), Some(hash), None) => {
                        if !self.password_matches(given, hash).await? {
                            return Err(ProofError::WrongPassword);
                        }
                        true
                    }
                    _ => false,
                };
                let proof = users::prove_email(conn, user_id, email, knows_password).await.during("prove an email")?;
                match proof.ok_or(ProofError::NoAccount)? {
                    EmailProof::Claimed(user) => {
                        let after = json!({ "password_and_phone_kept": knows_password, "sessions_revoked": true });
                        audit_user(conn, &by, "auth.email_proven", user_id, Some(after)).await?;
                        Ok(user)
                    }
                    EmailProof::AlreadyProven(user) => Ok(user),
                }
            }
            Contact::Phone(phone) => match users::prove_phone(conn, user_id, phone).await? {
                None => Err(ProofError::NoAccount),
                Some(PhoneProof::Proven { user, taken_from }) => {
                    if taken_from > 0 {
                        let after = json!({ "taken_from_unverified_holders": taken_from });
                        audit_user(conn, &by, "auth.phone_proven", user_id, Some(after)).await?;
                    }
                    Ok(user)
                }
                Some(PhoneProof::EmailNotProven) => Err(ProofError::EmailNotVerified),
                Some(PhoneProof::Taken) => Err(ProofError::PhoneTaken),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::accounts::users::Role;

    fn user(email_proven: bool, phone_proven: bool) -> User {
        let at = |proven: bool| proven.then(Utc::now);
        User {
            id: Uuid::now_v7(),
            name: "Asha".into(),
            email: "asha@example.com".into(),
            phone: Some("+919876543210".into()),
            role: Role::User,
            password_hash: None,
            email_verified_at: at(email_proven),
            phone_verified_at: at(phone_proven),
            disabled_at: None,
            session_epoch: 0,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn a_phone_is_verified_only_after_the_email_and_only_once() {
        let (email, phone) = (Contact::parse("asha@example.com").unwrap(), Contact::parse("+919876543210").unwrap());
        assert!(may_request_verification(&user(false, false), &email));
        assert!(!may_request_verification(&user(true, false), &email), "already proven");
        assert!(!may_request_verification(&user(false, false), &phone), "no owner to give it to yet");
        assert!(may_request_verification(&user(true, false), &phone));
        assert!(!may_request_verification(&user(true, true), &phone));
    }

    #[test]
    fn an_unproven_phone_neither_logs_in_nor_gets_login_codes() {
        let (email, phone) = (Contact::parse("asha@example.com").unwrap(), Contact::parse("+919876543210").unwrap());
        for (u, phone_works) in [(user(true, false), false), (user(true, true), true)] {
            assert!(may_request_login(&u, &email) && identifies_for_login(&u, &email));
            assert_eq!((may_request_login(&u, &phone), identifies_for_login(&u, &phone)), (phone_works, phone_works));
        }
    }
}
