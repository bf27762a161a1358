//! What a pickup or return door's outcome means (called by
//! [`crate::exchange::lifecycle`] in the transaction of the outcome):
//!
//! - acknowledged: the item is `collected` (`returned`) at that moment,
//!   billing closes then, the sender is told the amount (email, and SMS to a
//!   proven phone) and the receiver gets a receipt;
//! - failed for good: the item stays where it was (`stored`/`expired`),
//!   flagged (`pickup_failed_at`), its bill closed at the collect (billing
//!   stops when the code was typed), the locker goes to `maintenance`,
//!   admins are alerted, and whoever typed the code is told to contact support;
//! - door closed after the acknowledged open: the locker is `available`.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;

use super::{messages, receiver};
use crate::audit::{self, Actor, Entry};
use crate::billing::{self, DefaultTariff};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::alerts::{self, Alert};
use crate::exchange::deposit::place_of;
use crate::exchange::doors::{DoorCommand, Reason};
use crate::exchange::items::{self, Item, ItemStatus};
use crate::messaging::outbox;

/// The tariff recorded with the collect (see migration 0013).
async fn collect_tariff(conn: &mut PgConnection, item: &Item) -> Result<DefaultTariff, ExchangeError> {
    let recorded: (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT collect_tariff_paise, collect_currency::text FROM items WHERE id = $1")
            .bind(item.id)
            .fetch_one(conn)
            .await
            .during("read a collect's tariff")?;
    tariff_of(recorded)
}

/// The constraint `items_collect_priced` fills both whenever a collect is recorded.
fn tariff_of(recorded: (Option<i64>, Option<String>)) -> Result<DefaultTariff, ExchangeError> {
    match recorded {
        (Some(minor_per_hour), Some(currency)) => Ok(DefaultTariff { minor_per_hour, currency }),
        _ => Err(DbError { operation: "read a collect's tariff", source: sqlx::Error::RowNotFound }.into()),
    }
}

/// The controller opened the door for a pickup or return.
pub async fn door_opened(conn: &mut PgConnection, by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    let Some(item_id) = command.item_id else { return Ok(()) };
    let Some(item) = items::lock(conn, item_id).await? else { return Ok(()) };
    let to = if command.reason == Reason::Return { ItemStatus::Returned } else { ItemStatus::Collected };
    if !item.status.can_become(to) || item.collect_requested_at.is_none() {
        // Force-cleared (or otherwise settled) while the open was in flight.
        tracing::warn!(item_id = %item.id, status = ?item.status, "a collect's door opened for an item no longer waiting");
        return Ok(());
    }
    let at: DateTime<Utc> = match command.acked_at {
        Some(at) => at,
        None => sqlx::query_scalar("SELECT now()").fetch_one(&mut *conn).await.during("read the time")?,
    };
    let recorded = sqlx::query_as(
        "UPDATE items SET status = $2, closed_at = $3, updated_at = now() WHERE id = $1
         RETURNING collect_tariff_paise, collect_currency::text",
    )
    .bind(item.id)
    .bind(to.as_str())
    .bind(at)
    .fetch_one(&mut *conn)
    .await
    .during("close an item")?;
    let tariff = tariff_of(recorded)?;
    let bill = billing::close(conn, item.id, at, &tariff).await?;
    let place = place_of(conn, item.id).await?;
    let mut told: Vec<_> = place
        .sender
        .iter()
        .cloned()
        .map(|to| {
            if to_is_return(command) {
                messages::returned(to, &item.name, at, &bill.amount, bill.hours)
            } else {
                messages::collected(to, &item.name, at, &bill.amount, bill.hours)
            }
        })
        .collect();
    if !to_is_return(command)
        && let Some(to) = receiver(item.receiver_phone.as_deref(), item.receiver_email.as_deref())
    {
        told.push(messages::receipt(to, &item.name, &place.name, item.door_no, at));
    }
    outbox::queue_all(conn, &told).await?;
    let action = if to_is_return(command) { "item.returned" } else { "item.collected" };
    let by_whom = if to_is_return(command) { "sender" } else { "receiver" };
    metrics::counter!(crate::telemetry::metrics::name::COLLECTIONS, "by" => by_whom).increment(1);
    let after = json!({ "status": to, "closed_at": at, "amount_paise": bill.amount.minor, "hours": bill.hours });
    let entry = Entry::change(action, "item", item.id, Some(&json!({ "status": item.status })), Some(&after));
    audit::record(conn, by, entry).await?;
    Ok(())
}

fn to_is_return(command: &DoorCommand) -> bool {
    command.reason == Reason::Return
}

/// The pickup or return open failed for good.
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
    let waiting = item.filter(|i| {
        matches!(i.status, ItemStatus::Stored | ItemStatus::Expired)
            && i.collect_requested_at.is_some()
            && i.pickup_failed_at.is_none()
    });
    if let (Some(item), Some(requested_at)) = (&waiting, waiting.as_ref().and_then(|i| i.collect_requested_at)) {
        sqlx::query("UPDATE items SET pickup_failed_at = now(), updated_at = now() WHERE id = $1")
            .bind(item.id)
            .execute(&mut *conn)
            .await
            .during("flag an item whose door failed")?;
        // Billing stops when the code was typed: the person did all they could.
        let tariff = collect_tariff(conn, item).await?;
        let bill = billing::close(conn, item.id, requested_at, &tariff).await?;
        let place = place_of(conn, item.id).await?;
        let told = if to_is_return(command) {
            place.sender.first().cloned()
        } else {
            receiver(item.receiver_phone.as_deref(), item.receiver_email.as_deref())
        };
        if let Some(to) = told {
            outbox::queue(conn, &messages::open_failed(to, &item.name, &place.name, item.door_no)).await?;
        }
        let after = json!({ "flagged": true, "billing_stopped_at": requested_at,
                            "amount_paise": bill.amount.minor, "error": error });
        audit::record(conn, by, Entry::change("item.pickup_failed", "item", item.id, None::<&()>, Some(&after)))
            .await?;
    }
    let summary = format!(
        "The {} open of this locker failed for good ({error}); the item is still inside. Check the door, then \
         force-clear the locker to hand the item over.",
        command.reason.as_str()
    );
    let alert = Alert {
        event: "pickup_open_failed",
        locker_id: command.locker_id,
        item_id: command.item_id,
        summary: &summary,
    };
    alerts::out_of_service(conn, by, alert).await
}

/// The door was closed after the acknowledged pickup or return open: the
/// locker is free again (unless staff took it out of service meanwhile).
pub async fn door_closed(conn: &mut PgConnection, by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    // Freed, and the audit entry written, in one statement.
    let (actor_id, client_ip, request_id) = by.audit_binds();
    sqlx::query(concat!(
        "WITH freed AS (
             UPDATE lockers SET status = 'available', updated_at = now()
             WHERE id = $1 AND status = 'occupied'
               AND NOT EXISTS (SELECT 1 FROM items WHERE locker_id = $1 AND status IN ('reserved', 'stored', 'expired'))
             RETURNING id) ",
        audit::insert_entry!(),
        " SELECT $3, 'locker.freed', 'locker', id::text, NULL,
                 jsonb_build_object('status', 'available', 'command_id', $2::uuid), $4::inet, $5
          FROM freed"
    ))
    .bind(command.locker_id)
    .bind(command.id)
    .bind(actor_id)
    .bind(client_ip)
    .bind(request_id)
    .execute(&mut *conn)
    .await
    .during("free a locker")?;
    Ok(())
}
