//! Force-clear: an admin empties a locker. The request ([`request`]) issues a
//! `force_clear` door command and records why; when the controller
//! acknowledges the open ([`door_opened`]) the item inside is removed in one
//! transaction: a stored or expired item becomes `force_removed` and its bill
//! closes at that moment; a reservation is cancelled (nothing was stored, so
//! nothing is billed); the sender is told. The locker goes `available` when
//! the door is reported closed ([`door_closed`]).
//!
//! A force-clear racing a collect ends in one state: both acknowledgements
//! lock the item, the first decides (collected, or force-removed) and the
//! second finds it closed and changes nothing; `billing::close` writes the one
//! bill once either way.

use chrono::Utc;
use minijinja::context;
use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::deposit::{Note, place_of, tell_sender};
use super::doors::{self, DoorCommand, Reason};
use super::items::{self, ItemStatus};
use super::{ExchangeError, alerts, codes};
use crate::audit::{self, Actor, Entry};
use crate::billing::{self, DefaultTariff, Money, Tariffs};
use crate::db::{DbError, During};
use crate::jobs::EnqueueError;
use crate::places::lockers::Size;

/// Why an admin clears a locker: 1 to 500 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearReason(String);

impl ClearReason {
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        (1..=500).contains(&s.chars().count()).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForceClearError {
    #[error("locker not found")]
    NotFound,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for ForceClearError {
    fn from(e: DbError) -> Self {
        Self::Exchange(e.into())
    }
}

impl From<EnqueueError> for ForceClearError {
    fn from(e: EnqueueError) -> Self {
        Self::Exchange(e.into())
    }
}

/// An accepted force-clear: the door command and the item it will remove, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requested {
    pub command_id: Uuid,
    pub item_id: Option<Uuid>,
}

/// Asks the door of `locker_id` to open for a force-clear, recording `reason`
/// and the configured price of the locker's size in force now (the
/// acknowledgement bills with it).
pub async fn request(
    conn: &mut PgConnection,
    by: &Actor,
    tariffs: &Tariffs,
    locker_id: Uuid,
    reason: ClearReason,
) -> Result<Requested, ForceClearError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let size: Option<Size> = sqlx::query_scalar("SELECT size FROM lockers WHERE id = $1 FOR UPDATE")
        .bind(locker_id)
        .fetch_optional(&mut *tx)
        .await
        .during("lock a locker")?;
    let tariff = tariffs.for_size(size.ok_or(ForceClearError::NotFound)?);
    let item_id: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM items WHERE locker_id = $1 AND status IN ('reserved', 'stored', 'expired')")
            .bind(locker_id)
            .fetch_optional(&mut *tx)
            .await
            .during("find a locker's item")?;
    let command_id = doors::issue(&mut tx, locker_id, item_id, Reason::ForceClear).await?;
    sqlx::query(
        "INSERT INTO force_clears (command_id, reason, default_tariff_paise, currency) VALUES ($1, $2, $3, $4)",
    )
    .bind(command_id)
    .bind(reason.as_str())
    .bind(tariff.minor_per_hour)
    .bind(&tariff.currency)
    .execute(&mut *tx)
    .await
    .during("record a force-clear")?;
    let entry = Entry {
        action: "locker.force_clear",
        target_type: "locker",
        target_id: Some(locker_id.to_string()),
        before: None,
        after: Some(json!({ "reason": reason.as_str(), "item_id": item_id, "command_id": command_id })),
    };
    audit::record(&mut tx, by, entry).await?;
    tx.commit().await.during("commit a force-clear")?;
    Ok(Requested { command_id, item_id })
}

/// The force-clear door opened: the item inside is removed (see the module notes).
pub async fn door_opened(conn: &mut PgConnection, by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    let Some(item_id) = command.item_id else { return Ok(()) };
    let (reason, minor_per_hour, currency): (String, i64, String) =
        sqlx::query_as("SELECT reason, default_tariff_paise, currency FROM force_clears WHERE command_id = $1")
            .bind(command.id)
            .fetch_one(&mut *conn)
            .await
            .during("read a force-clear")?;
    let Some(before) = items::lock(conn, item_id).await? else { return Ok(()) };
    let to = match before.status {
        ItemStatus::Stored | ItemStatus::Expired => ItemStatus::ForceRemoved,
        ItemStatus::Reserved => ItemStatus::Cancelled,
        // A collect or return won the race (or a repeat): nothing left to remove.
        _ => return Ok(()),
    };
    // The moment the controller acknowledged the open: the item's end and its bill's are one.
    let ended_at = command.acked_at.unwrap_or_else(Utc::now);
    sqlx::query("UPDATE items SET status = $2, closed_at = $3, updated_at = now() WHERE id = $1")
        .bind(item_id)
        .bind(to.as_str())
        .bind(ended_at)
        .execute(&mut *conn)
        .await
        .during("force-remove an item")?;
    codes::retire(conn, item_id, &[]).await?;
    let amount = if to == ItemStatus::ForceRemoved {
        let tariff = DefaultTariff { minor_per_hour, currency };
        Some(billing::close(conn, item_id, ended_at, &tariff).await?.amount)
    } else {
        None
    };
    let after = items::get(conn, item_id).await?;
    let entry = Entry {
        action: if to == ItemStatus::ForceRemoved { "item.force_remove" } else { "item.cancel" },
        target_type: "item",
        target_id: Some(item_id.to_string()),
        before: serde_json::to_value(&before).ok(),
        after: Some(json!({ "item": after, "reason": reason, "amount": amount, "command_id": command.id })),
    };
    audit::record(conn, by, entry).await?;
    let place = place_of(conn, before.id).await?;
    tell_sender(conn, &place, removed(&before.name, &place.name, before.door_no, amount.as_ref())).await
}

/// To the sender: staff emptied the locker, and the charge if any.
pub(crate) fn removed(name: &str, point: &str, door_no: i32, amount: Option<&Money>) -> Note {
    let context = context! { item => name, place => point, door => door_no, amount => amount.map(Money::to_string) };
    Note { kind: "item_force_removed", context }
}

/// The force-clear open failed for good: the locker goes to maintenance and
/// admins are alerted; the item stays as it was.
pub async fn door_failed(
    conn: &mut PgConnection,
    by: &Actor,
    command: &DoorCommand,
    error: &str,
) -> Result<(), ExchangeError> {
    let summary = format!("The door could not be opened for a force-clear ({error}); the locker is in maintenance.");
    let alert = alerts::Alert {
        event: "force_clear_failed",
        locker_id: command.locker_id,
        item_id: command.item_id,
        summary: &summary,
    };
    alerts::out_of_service(conn, by, alert).await
}

/// The door closed after the force-clear: the empty locker is `available`.
pub async fn door_closed(conn: &mut PgConnection, _by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    sqlx::query(
        "UPDATE lockers SET status = 'available', updated_at = now()
         WHERE id = $1 AND NOT EXISTS (
             SELECT 1 FROM items WHERE locker_id = $1 AND status IN ('reserved', 'stored', 'expired'))",
    )
    .bind(command.locker_id)
    .execute(conn)
    .await
    .during("free a force-cleared locker")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_and_bounded() {
        assert!(ClearReason::parse("  ").is_none());
        assert!(ClearReason::parse(&"x".repeat(501)).is_none());
        assert_eq!(ClearReason::parse(" jammed ").map(|r| r.as_str().to_owned()), Some("jammed".to_owned()));
    }
}
