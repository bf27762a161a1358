//! What the deposit door's outcomes mean (called by `lifecycle`), and drop-off doors left open.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::*;
use crate::audit::{self, Actor, Entry};
use crate::db::During;
use crate::exchange::doors::{DoorCommand, Reason};
use crate::exchange::items::{self, Item, ItemStatus};
use crate::exchange::{ExchangeError, alerts};
use crate::messaging::outbox;

/// The controller acknowledged the deposit open: the door is open for the drop-off.
pub async fn door_opened(conn: &mut PgConnection, _by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    mark_opened(conn, command).await
}

/// The controller reports a door open: when it follows a deposit open, the
/// drop-off door is open (even before the acknowledgement arrives).
pub async fn door_reported_open(
    conn: &mut PgConnection,
    _by: &Actor,
    _locker_id: Uuid,
    command: Option<&DoorCommand>,
) -> Result<(), ExchangeError> {
    match command {
        Some(command) if command.reason == Reason::Deposit => mark_opened(conn, command).await,
        _ => Ok(()),
    }
}

pub(super) async fn mark_opened(conn: &mut PgConnection, command: &DoorCommand) -> Result<(), ExchangeError> {
    let Some(item_id) = command.item_id else { return Ok(()) };
    sqlx::query(
        "UPDATE items SET dropoff_opened_at = coalesce(dropoff_opened_at, now()), updated_at = now()
         WHERE id = $1 AND status = 'reserved'",
    )
    .bind(item_id)
    .execute(conn)
    .await
    .during("record a drop-off door open")?;
    Ok(())
}

/// The door closed after the deposit open: `reserved -> stored` (billing runs
/// from now), the locker `occupied`, the receiver told where and how to
/// collect, the sender told it is stored. An item no longer reserved (an
/// admin force-cleared it meanwhile) stays as it is.
pub async fn door_closed(conn: &mut PgConnection, by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    let Some(item_id) = command.item_id else { return Ok(()) };
    let Some(before) = items::lock(conn, item_id).await? else { return Ok(()) };
    if before.status != ItemStatus::Reserved {
        return Ok(());
    }
    // The item stored and its locker occupied (also out of maintenance when
    // the door was left open and is closed at last), in one statement that
    // answers the stored item.
    let item: Item = sqlx::query_as(concat!(
        "WITH i AS (
             UPDATE items SET status = 'stored', stored_at = now(),
                 pickup_by = now() + make_interval(secs => pickup_window_secs), updated_at = now()
             WHERE id = $1 RETURNING *),
         occupied AS (UPDATE lockers SET status = 'occupied', updated_at = now() WHERE id = $2)
         SELECT ",
        items::item_columns!(),
        " FROM i JOIN lockers l ON l.id = i.locker_id"
    ))
    .bind(item_id)
    .bind(before.locker_id)
    .fetch_optional(&mut *conn)
    .await
    .during("store an item")?
    .ok_or_else(|| missing("read a stored item"))?;
    crate::telemetry::metrics::business(crate::telemetry::metrics::name::DEPOSITS, 1);
    audit::record(conn, by, Entry::change("item.store", "item", item_id, Some(&before), Some(&item))).await?;
    let place = place_of(conn, item.id).await?;
    let mut told: Vec<_> =
        receiver_recipients(&item).into_iter().map(|to| messages::stored_for_receiver(to, &item, &place)).collect();
    told.extend(messages::stored_for_sender(&item, &place).for_sender(&place));
    outbox::queue_all(conn, &told).await?;
    Ok(())
}

/// The deposit open failed for good: the reservation is cancelled, the locker
/// goes to `maintenance`, admins are alerted and the sender told.
pub async fn door_failed(
    conn: &mut PgConnection,
    by: &Actor,
    command: &DoorCommand,
    error: &str,
) -> Result<(), ExchangeError> {
    let item = match command.item_id {
        Some(id) => items::lock(conn, id).await?,
        None => None,
    };
    let reserved = item.filter(|i| i.status == ItemStatus::Reserved);
    if let Some(item) = &reserved {
        end_reservation(conn, item).await?;
        let after = items::get(conn, item.id).await?;
        audit::record(conn, by, Entry::change("item.cancel", "item", item.id, Some(item), after.as_ref())).await?;
    }
    let summary = format!("The door could not be opened for a drop-off ({error}); the locker is in maintenance.");
    let alert = alerts::Alert {
        event: "deposit_open_failed",
        locker_id: command.locker_id,
        item_id: command.item_id,
        summary: &summary,
    };
    alerts::out_of_service(conn, by, alert).await?;
    if let Some(item) = &reserved {
        let place = place_of(conn, item.id).await?;
        tell_sender(conn, &place, messages::dropoff_failed(item, &place)).await?;
    }
    Ok(())
}

/// Drop-off doors opened at least `$2` seconds before `$1` and not yet
/// reported, oldest first, at most `$3`, locked (rows another sweep holds are
/// skipped). Served by `items_dropoff_open_idx`.
pub const DOORS_LEFT_OPEN: &str = "SELECT id FROM items
     WHERE status = 'reserved' AND dropoff_opened_at IS NOT NULL AND door_left_open_at IS NULL
       AND dropoff_opened_at <= $1::timestamptz - make_interval(secs => $2)
     ORDER BY dropoff_opened_at LIMIT $3 FOR UPDATE SKIP LOCKED";

/// Doors left open one run reports; the next run takes the rest.
const LEFT_OPEN_BATCH: i64 = 500;

/// Drop-off doors opened at least `timeout` before `now` and never reported
/// closed: each locker goes to `maintenance`, admins are alerted and the
/// sender asked to close it, once per item. The item stays `reserved` (see
/// the module notes). Returns how many were found.
pub async fn doors_left_open(
    conn: &mut PgConnection,
    by: &Actor,
    now: DateTime<Utc>,
    timeout: Duration,
) -> Result<u64, ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let due: Vec<Uuid> = sqlx::query_scalar(DOORS_LEFT_OPEN)
        .bind(now)
        .bind(timeout.as_secs_f64())
        .bind(LEFT_OPEN_BATCH)
        .fetch_all(&mut *tx)
        .await
        .during("find doors left open")?;
    for id in &due {
        let Some(item) = items::get(&mut tx, *id).await? else { continue };
        sqlx::query("UPDATE items SET door_left_open_at = $2, updated_at = now() WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .during("flag a door left open")?;
        let summary = format!(
            "Door {} was opened for a drop-off and not reported closed within {} seconds; the locker is in \
             maintenance. Check the door; if it stays open, force-clear the locker.",
            item.door_no,
            timeout.as_secs()
        );
        let alert = alerts::Alert {
            event: "door_left_open",
            locker_id: item.locker_id,
            item_id: Some(item.id),
            summary: &summary,
        };
        alerts::out_of_service(&mut tx, by, alert).await?;
        let place = place_of(&mut tx, item.id).await?;
        tell_sender(&mut tx, &place, messages::close_the_door(&item, &place)).await?;
    }
    tx.commit().await.during("commit doors left open")?;
    Ok(due.len() as u64)
}
