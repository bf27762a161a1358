//! A reservation ends before its drop-off: the sender cancels, or its deadline passes.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::*;
use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::items::{self, Item, ItemStatus};

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("item not found")]
    NotFound,
    #[error("only a reservation can be cancelled")]
    NotReserved,
    /// The door was asked to open: the parcel may be going in.
    #[error("the drop-off has started; the reservation can no longer be cancelled")]
    DropoffStarted,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for CancelError {
    fn from(e: DbError) -> Self {
        Self::Exchange(e.into())
    }
}

/// The sender cancels a reservation whose door was never asked to open.
pub async fn cancel(conn: &mut PgConnection, by: &Actor, item_id: Uuid) -> Result<Item, CancelError> {
    let sender = by.user_id().ok_or(CancelError::NotFound)?;
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let before = items::lock(&mut tx, item_id).await?.filter(|i| i.sender_id == sender).ok_or(CancelError::NotFound)?;
    if before.status != ItemStatus::Reserved {
        return Err(CancelError::NotReserved);
    }
    if before.dropoff_requested_at.is_some() {
        return Err(CancelError::DropoffStarted);
    }
    end_reservation(&mut tx, &before).await?;
    let after = items::get(&mut tx, item_id).await?.ok_or_else(|| missing("read a cancelled item"))?;
    audit::record(&mut tx, by, Entry::change("item.cancel", "item", item_id, Some(&before), Some(&after))).await?;
    tx.commit().await.during("commit a cancellation")?;
    Ok(after)
}

/// Reservations past their drop-off deadline (`$1`) whose door was never
/// asked to open, oldest first, at most `$2`, locked (rows another sweep holds
/// are skipped). Served by `items_reserved_dropoff_idx` (checked by the test
/// `every_sweep_statement_is_served_by_an_index`).
pub const EXPIRED_RESERVATIONS: &str = "SELECT id FROM items
     WHERE status = 'reserved' AND dropoff_by <= $1 AND dropoff_requested_at IS NULL
     ORDER BY dropoff_by LIMIT $2 FOR UPDATE SKIP LOCKED";

/// Reservations one run cancels; the next run takes the rest.
const BATCH: i64 = 500;

/// Cancels every reservation past its drop-off deadline as of `now` whose door
/// was never asked to open (one asked to open belongs to the door: it is
/// stored when closed, cancelled when the open fails, alerted when left
/// open). Each sender is told. Returns how many expired (at most [`BATCH`] a
/// run).
pub async fn expire_reservations(
    conn: &mut PgConnection,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<u64, ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let due: Vec<Uuid> = sqlx::query_scalar(EXPIRED_RESERVATIONS)
        .bind(now)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await
        .during("find expired reservations")?;
    for id in &due {
        let Some(item) = items::get(&mut tx, *id).await? else { continue };
        end_reservation(&mut tx, &item).await?;
        let entry = Entry {
            action: "item.expire",
            target_type: "item",
            target_id: Some(id.to_string()),
            before: None,
            after: Some(json!({ "status": "cancelled", "dropoff_by": item.dropoff_by })),
        };
        audit::record(&mut tx, by, entry).await?;
        let place = place_of(&mut tx, item.id).await?;
        tell_sender(&mut tx, &place, messages::reservation_expired(&item, &place)).await?;
    }
    tx.commit().await.during("commit expired reservations")?;
    Ok(due.len() as u64)
}
