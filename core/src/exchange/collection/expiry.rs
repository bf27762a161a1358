//! The time-driven end of a stay, run by the sweep with a given `now` (and
//! by tests with a later one):
//!
//! - [`expire_stored`]: a `stored` item past its pickup window becomes
//!   `expired`, with a return deadline (`RETURN_WINDOW_SECS` from then); its
//!   pickup codes die and its sender is told how to take it back (a return
//!   code at the locker or the point's screen, with their account's email or
//!   proven phone). Billing goes on until the return.
//! - [`abandon_expired`]: an `expired` item past its return deadline is
//!   abandoned: it stays `expired` (marked `abandoned_at`), its bill closes at
//!   the deadline (DESIGN "Money"), no more return codes are sent, the locker
//!   stays `occupied` and admins are alerted to force-clear it (which makes
//!   the item `force_removed`); the sender is told.
//!
//! Items whose door is opening (a code was typed) are left alone: the
//! door's outcome settles them. Each run takes at most [`BATCH`] items per
//! step, skipping rows another run holds, so two sweeps at once never tell
//! anyone twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::messages;
use crate::audit::{self, Actor, Entry};
use crate::billing::{self, Tariffs};
use crate::config::Config;
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::alerts::{self, Alert};
use crate::exchange::codes::{self, PointPurpose};
use crate::exchange::deposit::place_of;
use crate::messaging::outbox;

/// Items one step of one run handles; the next run takes the rest.
pub const BATCH: i64 = 500;

/// What the exchange's sweep steps need from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirySettings {
    /// `RETURN_WINDOW_SECS`.
    pub return_window: Duration,
    /// The price of hours without a tariff row (`TARIFFS`, else `DEFAULT_TARIFF_PAISE`, in `CURRENCY`).
    pub tariffs: Tariffs,
}

impl ExpirySettings {
    pub fn from_config(config: &Config) -> Self {
        Self { return_window: config.return_window, tariffs: Tariffs::from_config(config) }
    }
}

/// Makes `stored` items past their pickup window (`$1`) `expired` with return
/// deadline `$2`, at most `$3`, oldest first; rows another sweep holds are
/// skipped. Served by `items_stored_pickup_by_idx`.
pub const EXPIRE_STORED: &str = "WITH due AS (
         SELECT id FROM items
         WHERE status = 'stored' AND pickup_by <= $1 AND collect_requested_at IS NULL
         ORDER BY pickup_by LIMIT $3 FOR UPDATE SKIP LOCKED)
     UPDATE items i SET status = 'expired', return_by = $2, updated_at = now()
     FROM due, lockers l WHERE i.id = due.id AND l.id = i.locker_id
     RETURNING i.id, i.name, l.door_no";

/// Marks `expired` items past their return deadline (`$1`) abandoned, at most
/// `$2`, oldest first; rows another sweep holds are skipped. Served by
/// `items_expired_return_by_idx`.
pub const ABANDON_EXPIRED: &str = "WITH due AS (
         SELECT id FROM items
         WHERE status = 'expired' AND abandoned_at IS NULL AND return_by <= $1 AND collect_requested_at IS NULL
         ORDER BY return_by LIMIT $2 FOR UPDATE SKIP LOCKED)
     UPDATE items i SET abandoned_at = $1, updated_at = now()
     FROM due WHERE i.id = due.id
     RETURNING i.id, i.locker_id, i.name, i.return_by";

/// `stored` items past their pickup window as of `now` -> `expired`; returns how many.
pub async fn expire_stored(
    conn: &mut PgConnection,
    by: &Actor,
    now: DateTime<Utc>,
    settings: &ExpirySettings,
) -> Result<u64, ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let return_by = now + settings.return_window;
    let expired: Vec<(Uuid, String, i32)> = sqlx::query_as(EXPIRE_STORED)
        .bind(now)
        .bind(return_by)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await
        .during("expire stored items")?;
    for (item_id, name, door_no) in &expired {
        codes::retire(&mut tx, *item_id, &[PointPurpose::Pickup]).await?;
        let place = place_of(&mut tx, *item_id).await?;
        for to in place.sender.iter().cloned() {
            outbox::queue(&mut tx, &messages::expired(to, name, &place.name, *door_no, return_by)).await?;
        }
        let after = json!({ "status": "expired", "return_by": return_by });
        let entry = Entry::change("item.expired", "item", item_id, Some(&json!({ "status": "stored" })), Some(&after));
        audit::record(&mut tx, by, entry).await?;
    }
    tx.commit().await.during("commit expired items")?;
    Ok(expired.len() as u64)
}

/// `expired` items past their return deadline as of `now` -> abandoned; returns how many.
pub async fn abandon_expired(
    conn: &mut PgConnection,
    by: &Actor,
    now: DateTime<Utc>,
    settings: &ExpirySettings,
) -> Result<u64, ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let abandoned: Vec<(Uuid, Uuid, String, DateTime<Utc>)> = sqlx::query_as(ABANDON_EXPIRED)
        .bind(now)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await
        .during("abandon expired items")?;
    for (item_id, locker_id, name, return_by) in &abandoned {
        codes::retire(&mut tx, *item_id, &[PointPurpose::Return]).await?;
        let bill = billing::close(&mut tx, *item_id, *return_by, &settings.tariffs).await?;
        let place = place_of(&mut tx, *item_id).await?;
        for to in place.sender.iter().cloned() {
            outbox::queue(&mut tx, &messages::abandoned(to, name, &bill.amount, bill.hours)).await?;
        }
        let summary = format!(
            "\"{name}\" was not taken back by its return deadline; billing stopped at {return_by}. \
             Force-clear the locker and keep the item for its sender."
        );
        let alert =
            Alert { event: "item_abandoned", locker_id: *locker_id, item_id: Some(*item_id), summary: &summary };
        alerts::raise(&mut tx, by, alert).await?;
        let after = json!({ "abandoned_at": now, "billing_stopped_at": return_by, "amount_paise": bill.amount.minor });
        let entry = Entry::change("item.abandoned", "item", item_id, None::<&()>, Some(&after));
        audit::record(&mut tx, by, entry).await?;
    }
    tx.commit().await.during("commit abandoned items")?;
    Ok(abandoned.len() as u64)
}

/// Both steps, for [`crate::sweep`] (whose errors are database errors).
pub async fn sweep(
    conn: &mut PgConnection,
    by: &Actor,
    now: DateTime<Utc>,
    settings: &ExpirySettings,
) -> Result<(u64, u64), DbError> {
    let as_db = |e: ExchangeError| match e {
        ExchangeError::Db(e) | ExchangeError::Enqueue(crate::jobs::EnqueueError::Db(e)) => e,
        other => DbError { operation: "sweep the exchange", source: sqlx::Error::Protocol(other.to_string()) },
    };
    let expired = expire_stored(conn, by, now, settings).await.map_err(as_db)?;
    let abandoned = abandon_expired(conn, by, now, settings).await.map_err(as_db)?;
    Ok((expired, abandoned))
}
