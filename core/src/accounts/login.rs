//! Password login, and the throttle that keeps anyone from locking anyone
//! else out.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::contact::Contact;
use super::ownership::identifies_for_login;
use super::password::DUMMY_HASH;
use super::tokens::TokenPair;
use super::users::{self, User};
use super::{Accounts, Internal, audit_user, ip_key};
use crate::audit::{self, Actor, Party};
use crate::db::{DbError, During};
use crate::messaging::codes::RateLimited;
use crate::rate_limit::{Backoff, Decision, Limit};

/// Password tries for one identifier from one client before each next try waits.
const FREE_TRIES_PER_CLIENT: u32 = 5;

/// Failed passwords per identifier, from anywhere, before password login for it
/// is suspended (NIST SP 800-63B: at most 100 consecutive failures); a code
/// login or a password reset lifts it, and a success starts the count afresh.
const FAILURES_PER_IDENTIFIER: Limit =
    Limit { max: 100, window: Duration::from_secs(24 * 60 * 60), block_from_limit: false };

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// This client's wait after wrong passwords runs.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// 100 wrong passwords for this identifier: a code login or a reset lifts it.
    #[error("password login is suspended for this identifier")]
    Suspended { retry_after: Duration },
    /// One answer for every failure: unknown account, wrong password, disabled
    /// account, malformed identifier, unproven phone.
    #[error("the identifier or password is wrong")]
    InvalidCredentials,
    /// The right password of an account whose email was never proven.
    #[error("this account's email is not proven yet")]
    EmailNotVerified,
    #[error(transparent)]
    Internal(#[from] Internal),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How an identifier is named in limit keys: the contact when it parses, else
/// a short hash (arbitrary client text never becomes a large key).
fn identifier_key(contact: Option<&Contact>, identifier: &str) -> String {
    match contact {
        Some(contact) => contact.to_string(),
        None => {
            let digest = Sha256::digest(identifier.as_bytes());
            format!("h:{}", digest.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

fn failures_key(identifier_key: &str) -> String {
    format!("pw_fail:{identifier_key}")
}

/// The limits on password tries, so that nobody can lock anyone else out:
/// per identifier and client address, 5 free tries and then a wait doubling
/// from 1 s up to `LOGIN_LOCKOUT_SECS` (the owner on another address is never
/// slowed); per identifier, 100 failures suspend password login (code login
/// still works). Both answer the same for known and unknown identifiers.
struct Throttle {
    client_key: String,
    failures_key: String,
}

impl Accounts {
    /// Logs in with a password and starts a session. Tries are limited by the
    /// throttle above; an unknown account costs the same Argon2 work as a
    /// wrong password.
    pub async fn login(
        &self,
        db: &PgPool,
        by: &Actor,
        identifier: &str,
        password: String,
    ) -> Result<TokenPair, LoginError> {
        let contact = Contact::parse(identifier).ok();
        let throttle = self.admit(by, contact.as_ref(), identifier).await?;

        let user = match &contact {
            Some(contact) => users::by_contact(&mut *db.acquire().await.during("connect")?, contact)
                .await
                .during("look up a user by contact")?
                .filter(|u| identifies_for_login(u, contact)),
            None => None,
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_owned());
        let password_ok = self.password_matches(password, hash).await?;

        match user {
            // Only after the password proved right, so this cannot reveal accounts.
            Some(user) if password_ok && !user.is_disabled() && user.email_verified_at.is_none() => {
                self.succeeded(&throttle).await;
                Err(LoginError::EmailNotVerified)
            }
            Some(user) if password_ok && !user.is_disabled() => {
                self.succeeded(&throttle).await;
                let by = by.as_party(Party::User(user.id));
                let mut conn = db.acquire().await.during("connect")?;
                audit::audited(&mut conn, &by, async |tx| {
                    let pair = self.issue_tokens::<LoginError>(tx, &user).await?;
                    Ok::<_, LoginError>((
                        pair,
                        audit::Entry::change("auth.login", "user", user.id, None::<&()>, None::<&()>),
                    ))
                })
                .await
            }
            Some(user) => {
                audit_user(&mut *db.acquire().await.during("connect")?, by, "auth.login_failed", user.id, None).await?;
                self.failed(db, &throttle, by, Some(user.id)).await?;
                Err(LoginError::InvalidCredentials)
            }
            None => {
                self.failed(db, &throttle, by, None).await?;
                Err(LoginError::InvalidCredentials)
            }
        }
    }

    /// Lifts a suspension of password login for `user`'s contacts: a code
    /// login or a password reset proved the person holds them.
    pub(super) async fn lift_password_suspension(&self, user: &User) {
        for contact in [Some(user.email.as_str()), user.phone.as_deref()].into_iter().flatten() {
            if let Ok(contact) = Contact::parse(contact) {
                self.limiter.reset(&failures_key(&identifier_key(Some(&contact), contact.as_str()))).await;
            }
        }
    }

    /// Refuses while suspended or while this client's wait runs; otherwise
    /// counts the try before the password is checked, so parallel guesses
    /// cannot slip past the wait.
    async fn admit(&self, by: &Actor, contact: Option<&Contact>, identifier: &str) -> Result<Throttle, LoginError> {
        let id = identifier_key(contact, identifier);
        let throttle =
            Throttle { client_key: format!("pw_client:{id}:{}", ip_key(by)), failures_key: failures_key(&id) };
        if let Decision::Limited { retry_after } =
            self.limiter.check(&throttle.failures_key, FAILURES_PER_IDENTIFIER).await
        {
            return Err(LoginError::Suspended { retry_after });
        }
        let backoff = Backoff {
            free: FREE_TRIES_PER_CLIENT,
            base: Duration::from_secs(1),
            cap: self.config.login_lockout,
            memory: FAILURES_PER_IDENTIFIER.window,
        };
        RateLimited::check(self.limiter.attempt(&throttle.client_key, backoff).await)?;
        Ok(throttle)
    }

    async fn succeeded(&self, throttle: &Throttle) {
        self.limiter.reset(&throttle.client_key).await;
        self.limiter.reset(&throttle.failures_key).await;
    }

    /// Counts a failure; the one that reaches the cap is audited for a known account.
    async fn failed(&self, db: &PgPool, throttle: &Throttle, by: &Actor, user_id: Option<Uuid>) -> Result<(), DbError> {
        let failures = self.limiter.hit(&throttle.failures_key, FAILURES_PER_IDENTIFIER).await;
        if failures == (Decision::Allowed { count: FAILURES_PER_IDENTIFIER.max }) {
            tracing::warn!(event = "password_login_suspended", "password login suspended after 100 failures");
            if let Some(user_id) = user_id {
                let mut conn = db.acquire().await.during("connect")?;
                audit_user(&mut conn, by, "auth.password_login_suspended", user_id, None).await?;
            }
        }
        Ok(())
    }
}
