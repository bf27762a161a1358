//! The receiver's pickup reminder, run by the sweep: a `stored` item still
//! waiting `PICKUP_REMINDER_AFTER_SECS` after it was stored gets one message
//! to its receiver (email, else phone: the receipt's rule), once. Items whose
//! door is opening (a code was typed) or whose pickup window is over are
//! skipped: the first is being collected, the second expires instead.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::{messages, receiver};
use crate::db::During;
use crate::exchange::ExchangeError;
use crate::messaging::outbox;

/// Items one run reminds; the next run (a minute later) takes the rest.
pub const BATCH: i64 = 500;

/// Marks the due items reminded and returns what their messages need: `$1`
/// the sweep's time, `$2` the delay (seconds), `$3` the batch size. One
/// statement over `items_reminder_due_idx` (migration 0020); rows another
/// sweep holds are skipped, and `reminded_at` is set in the same statement
/// that picks an item, so two sweeps at once never remind twice.
pub const DUE_SQL: &str = "WITH due AS (
         SELECT id FROM items
         WHERE status = 'stored' AND reminded_at IS NULL AND stored_at <= $1::timestamptz - make_interval(secs => $2)
           AND pickup_by > $1 AND collect_requested_at IS NULL
         ORDER BY stored_at LIMIT $3 FOR UPDATE SKIP LOCKED)
     UPDATE items i SET reminded_at = $1, updated_at = now()
     FROM due, lockers l, locker_points p
     WHERE i.id = due.id AND l.id = i.locker_id AND p.id = l.point_id
     RETURNING i.id, i.name, i.receiver_phone, i.receiver_email, i.pickup_by, l.door_no, p.name, p.address";

type Due = (Uuid, String, Option<String>, Option<String>, DateTime<Utc>, i32, String, String);

/// Reminds the receivers of items stored at least `after` before `now` and
/// still waiting; returns how many. Not audited: it changes no state anyone
/// acts on, and the outbox row is its record.
pub async fn remind(conn: &mut PgConnection, now: DateTime<Utc>, after: Duration) -> Result<u64, ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let due: Vec<Due> = sqlx::query_as(DUE_SQL)
        .bind(now)
        .bind(after.as_secs_f64())
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await
        .during("find items to remind")?;
    for (_, name, phone, email, pickup_by, door_no, point_name, address) in &due {
        if let Some(to) = receiver(phone.as_deref(), email.as_deref()) {
            let waiting =
                messages::Waiting { item_name: name, point_name, address, door_no: *door_no, pickup_by: *pickup_by };
            let message = messages::pickup_reminder(to, &waiting);
            outbox::queue(&mut tx, &message).await?;
        }
    }
    tx.commit().await.during("commit pickup reminders")?;
    Ok(due.len() as u64)
}
