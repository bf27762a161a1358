//! Collection and return: a person at a locker (or at a point's screen) asks
//! for a code with their phone or email, types it, and the door opens.
//!
//! - [`request`]: sending pickup codes (to the receiver of a `stored` item)
//!   and return codes (to the sender of an `expired` one), the same answer
//!   whoever asks.
//! - [`collect`]: a right code issues the door command; the item changes
//!   when the controller acknowledges ([`outcomes`]).
//! - [`outcomes`]: what the door's acknowledgement, failure and closing mean.
//! - [`expiry`]: the pickup window (`stored -> expired`) and the end of the
//!   return window (abandoned: billing stops, staff alerted).
//! - [`reminder`]: one reminder to the receiver of an item still waiting.
//!
//! Limits (why each is keyed as it is) are in [`limits`].

pub mod collect;
pub mod expiry;
mod limits;
pub mod messages;
pub mod outcomes;
pub mod reminder;
pub mod request;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub use collect::{CollectError, Opening};
pub use outcomes::{door_closed, door_failed, door_opened};
pub use request::RequestError;

use crate::accounts::contact::{Email, Phone};
use crate::audit::Actor;
use crate::billing::{DefaultTariff, Money, Tariffs};
use crate::config::Config;
use crate::db::{DbError, During};
use crate::messaging::codes::Codes;
use crate::messaging::outbox::Recipient;
use crate::rate_limit::RateLimiter;

/// Where a person stands: in front of one locker, or at a point's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Locker(Uuid),
    Point(Uuid),
}

/// The collection use cases with what they share (limits, the code pepper,
/// the tariff). Cheap to build: the HTTP layer makes one per request.
pub struct Collection {
    config: Arc<Config>,
    limiter: Arc<RateLimiter>,
    codes: Arc<Codes>,
}

impl Collection {
    pub fn new(config: Arc<Config>, limiter: Arc<RateLimiter>, codes: Arc<Codes>) -> Self {
        Self { config, limiter, codes }
    }

    /// The configured prices (`TARIFFS`, else `DEFAULT_TARIFF_PAISE`), as configured now.
    fn tariffs(&self) -> Tariffs {
        Tariffs::from_config(&self.config)
    }
}

/// A key for per-address limits: the IPv4 address or the IPv6 /64.
fn ip_key(by: &Actor) -> String {
    by.client_ip.map(crate::net::rate_limit_key).unwrap_or_else(|| "unknown".into())
}

/// The receiver's one channel for a receipt: email when given, else SMS.
fn receiver(phone: Option<&str>, email: Option<&str>) -> Option<Recipient> {
    email
        .and_then(|e| Email::parse(e).ok())
        .map(Recipient::Email)
        .or_else(|| phone.and_then(|p| Phone::parse(p).ok()).map(Recipient::Sms))
}

/// What closing `item_id`'s bill at `at` would charge: every started hour
/// from `stored_at`, each at the tariff row valid when it started or else
/// `fallback` (the rule of `billing::close`, without writing). The ledger
/// written at close is the authority; this is the quote shown before it.
async fn quote(
    conn: &mut PgConnection,
    item_id: Uuid,
    at: DateTime<Utc>,
    fallback: &DefaultTariff,
) -> Result<(Money, i32), DbError> {
    let (minor, hours): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(coalesce(t.amount_paise, $3)), 0)::bigint, count(h.hour_start)
         FROM items i
         CROSS JOIN LATERAL generate_series(
             i.stored_at,
             i.stored_at + (greatest(ceil(extract(epoch FROM $2 - i.stored_at) / 3600), 1) - 1) * interval '1 hour',
             interval '1 hour') AS h(hour_start)
         LEFT JOIN LATERAL (
             SELECT amount_paise FROM tariffs
             WHERE size = i.size AND valid_from <= h.hour_start
             ORDER BY valid_from DESC LIMIT 1) t ON true
         WHERE i.id = $1 AND i.stored_at IS NOT NULL",
    )
    .bind(item_id)
    .bind(at)
    .bind(fallback.minor_per_hour)
    .fetch_one(conn)
    .await
    .during("quote an item's bill")?;
    Ok((Money::new(minor, fallback.currency.clone()), i32::try_from(hours).unwrap_or(i32::MAX)))
}
