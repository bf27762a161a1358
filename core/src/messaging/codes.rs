//! Sending and redeeming one-time codes, with the limits every purpose shares
//! (account codes now, pickup codes next): code requests count per (contact,
//! client address) under a per-contact ceiling; SMS obey a country allow-list
//! and an hourly budget whose exhaustion alerts operators; wrong codes count
//! against the live code (5 tries) and the guesser's address, never against
//! the contact.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::{Acquire, PgConnection, PgPool, Postgres, Transaction};

use crate::accounts::contact::{Contact, Phone};
use crate::audit;
use crate::config::{Config, Secret};
use crate::db::{DbError, During};
use crate::jobs::EnqueueError;
use crate::messaging::otp::{self, Code, Purpose, Subject};
use crate::messaging::outbox;
use crate::rate_limit::{Decision, Limit, RateLimiter};

const HOUR: Duration = Duration::from_secs(60 * 60);

/// Code requests per (contact, client address), whatever the purpose and
/// whether or not the contact is known: a stranger spending this from their
/// address leaves the owner's address its own allowance.
const CODES_PER_CONTACT_AND_IP: Limit = Limit::per(5, Duration::from_secs(10 * 60));

/// Code requests per contact from all addresses: bounds what one phone (or
/// inbox) can cost. Above the 30 an hour one address can spend (6 windows of
/// 5), so no single address can reach it and hold off the owner.
const CODES_PER_CONTACT: Limit = Limit::per(40, HOUR);

/// Wrong codes per client address (its /64 for IPv6) per hour. The guesser
/// pays; the contact never does, so a stranger cannot keep its owner out (each
/// live code also dies after 5 wrong tries, and the owner asks for a fresh one).
const WRONG_CODES_PER_IP: Limit = Limit::per(20, HOUR);

/// The limiter key of the hourly SMS budget, shared by every replica through Redis.
const SMS_BUDGET_KEY: &str = "sms_budget";

/// A limit refused the request; `retry_after` says when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests")]
pub struct RateLimited {
    pub retry_after: Duration,
}

impl RateLimited {
    /// `Ok` when `decision` allowed the hit.
    pub fn check(decision: Decision) -> Result<(), Self> {
        match decision {
            Decision::Allowed { .. } => Ok(()),
            Decision::Limited { retry_after } => Err(Self { retry_after }),
        }
    }
}

/// Why a code was not sent or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The phone is outside `SMS_ALLOWED_COUNTRY_CODES`.
    #[error("text messages cannot be sent to this country")]
    CountryNotAllowed,
    /// This hour's SMS budget is spent and an email cannot stand in.
    #[error("the SMS budget of this hour is spent")]
    SmsBudgetExhausted,
    /// Wrong, expired, used or out of tries: one answer for all.
    #[error("the code is wrong, expired or already used")]
    InvalidCode,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

/// Code sending, built once per process and shared.
pub struct Codes {
    config: Arc<Config>,
    limiter: Arc<RateLimiter>,
    pepper: Secret,
    /// For the operator alert only: it is recorded outside the caller's
    /// transaction, so it stands whatever becomes of the request.
    db: PgPool,
}

impl Codes {
    pub fn new(config: Arc<Config>, limiter: Arc<RateLimiter>, db: PgPool) -> Self {
        // `validated()` always fills the pepper; a random one only serves a Config built by hand.
        let pepper = config.otp_pepper.clone().unwrap_or_else(Secret::random);
        Self { config, limiter, pepper, db }
    }

    /// The server secret keying one-time-code hashes.
    pub fn pepper(&self) -> &Secret {
        &self.pepper
    }

    /// Refuses SMS to phones outside `SMS_ALLOWED_COUNTRY_CODES` (SMS pumping
    /// goes for expensive destinations), whether or not the phone is known.
    pub fn check_country(&self, phone: &Phone) -> Result<(), CodeError> {
        if self.config.sms_allowed_country_codes.iter().any(|cc| cc.includes(phone)) {
            return Ok(());
        }
        Err(CodeError::CountryNotAllowed)
    }

    /// Counts one code request for `contact` from `ip_key`: per (contact,
    /// address), then (only if that allowed it, so a spent address costs the
    /// ceiling nothing) against the per-contact ceiling. Before any lookup, so
    /// known and unknown contacts are limited alike.
    pub async fn limit_requests(&self, ip_key: &str, contact: &Contact) -> Result<(), CodeError> {
        RateLimited::check(self.limiter.hit(&format!("codes:{contact}:{ip_key}"), CODES_PER_CONTACT_AND_IP).await)?;
        Ok(RateLimited::check(self.limiter.hit(&format!("codes:{contact}"), CODES_PER_CONTACT).await)?)
    }

    /// Counts one code request for `contact` from `ip_key`, per (contact,
    /// address) only: for codes a stranger must not be able to withhold
    /// from their owner (pickup and return codes), where a per-contact
    /// ceiling would let a few addresses spend it and hold the receiver off.
    pub async fn limit_requests_per_address(&self, ip_key: &str, contact: &Contact) -> Result<(), CodeError> {
        Ok(RateLimited::check(self.limiter.hit(&format!("codes:{contact}:{ip_key}"), CODES_PER_CONTACT_AND_IP).await)?)
    }

    fn sms_budget(&self) -> Limit {
        Limit::per(self.config.sms_budget_per_hour, HOUR)
    }

    /// Whether this hour's SMS budget is spent (without taking from it).
    pub async fn sms_paused(&self) -> bool {
        let spent = matches!(self.limiter.check(SMS_BUDGET_KEY, self.sms_budget()).await, Decision::Limited { .. });
        if spent {
            self.alert_sms_budget_spent().await;
        }
        spent
    }

    /// Takes one SMS from this hour's budget; false when it is spent.
    pub async fn take_sms(&self) -> bool {
        match self.limiter.hit(SMS_BUDGET_KEY, self.sms_budget()).await {
            Decision::Allowed { .. } => true,
            Decision::Limited { .. } => {
                self.alert_sms_budget_spent().await;
                false
            }
        }
    }

    /// Tells operators, once per hour (across replicas): an error-level log
    /// line with a stable event name, and an audit entry admins see in `/admin/audit`.
    async fn alert_sms_budget_spent(&self) {
        if self.limiter.hit("sms_budget_alert", Limit::per(1, HOUR)).await != (Decision::Allowed { count: 1 }) {
            return;
        }
        let budget = self.config.sms_budget_per_hour;
        tracing::error!(
            event = "sms_budget_exhausted",
            budget_per_hour = budget,
            "the SMS budget of this hour is spent: codes go by email where possible, phone verification answers 503"
        );
        let entry = audit::Entry {
            action: "sms.budget_exhausted",
            target_type: "sms_budget",
            target_id: None,
            before: None,
            after: Some(json!({ "budget_per_hour": budget })),
        };
        let recorded = match self.db.acquire().await {
            Ok(mut conn) => audit::record(&mut conn, &audit::Actor::system(), entry).await,
            Err(e) => Err(e).during("connect"),
        };
        if let Err(error) = recorded {
            tracing::warn!(%error, "could not audit the spent SMS budget");
        }
    }

    /// Issues a code for `contact` and queues its message, in the caller's
    /// transaction. Limits are the caller's to apply first.
    pub async fn send(
        &self,
        conn: &mut PgConnection,
        purpose: Purpose,
        contact: &Contact,
        subject: Subject,
    ) -> Result<(), CodeError> {
        let code = otp::issue(conn, &self.pepper, purpose, contact.as_str(), subject).await.during("issue a code")?;
        let message = outbox::one_time_code(contact.clone().into(), purpose, &code);
        outbox::queue(conn, &message).await?;
        Ok(())
    }

    /// Begins a transaction on `conn` and redeems the code in it, returning
    /// the transaction (for the caller's writes) and the code's subject. A
    /// rejection commits the counted try before answering `InvalidCode`, so
    /// the 5-tries rule holds, and counts against the guesser's address.
    pub async fn redeem<'c>(
        &self,
        conn: &'c mut PgConnection,
        ip_key: &str,
        purpose: Purpose,
        contact: &Contact,
        within: Subject,
        raw_code: &str,
    ) -> Result<(Transaction<'c, Postgres>, Subject), CodeError> {
        let wrong_key = format!("code_fail_ip:{ip_key}");
        RateLimited::check(self.limiter.check(&wrong_key, WRONG_CODES_PER_IP).await)?;
        let mut tx = conn.begin().await.during("begin a transaction")?;
        let outcome = match Code::parse(raw_code) {
            Some(code) => otp::redeem(&mut tx, &self.pepper, purpose, contact.as_str(), within, &code)
                .await
                .during("redeem a code")?,
            None => Err(otp::Rejected::Wrong),
        };
        match outcome {
            Ok(subject) => Ok((tx, subject)),
            Err(_) => {
                tx.commit().await.during("commit a counted try")?;
                self.limiter.hit(&wrong_key, WRONG_CODES_PER_IP).await;
                Err(CodeError::InvalidCode)
            }
        }
    }
}
