//! The drop-off: the door opens when the sender stands in front of it.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::*;
use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::codes::{self, PointPurpose};
use crate::exchange::doors::{self, Reason};
use crate::exchange::items::{self, Item, ItemStatus};
use crate::jobs::EnqueueError;
use crate::messaging::codes::RateLimited;
use crate::messaging::otp::Code;
use crate::places::is_online;

/// The door that opens (or is opening) for a drop-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DroppedOff {
    pub item_id: Uuid,
    pub door_no: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum DropoffError {
    #[error("item not found")]
    NotFound,
    /// Wrong, expired (past the drop-off deadline), used or out of tries: one answer for all.
    #[error("the code is wrong, expired or already used")]
    InvalidCode,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error("the item is not waiting for its drop-off")]
    NotReserved,
    #[error("the drop-off deadline has passed")]
    DeadlinePassed,
    #[error("the locker point is offline")]
    PointOffline,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for DropoffError {
    fn from(e: DbError) -> Self {
        Self::Exchange(e.into())
    }
}

impl From<EnqueueError> for DropoffError {
    fn from(e: EnqueueError) -> Self {
        Self::Exchange(e.into())
    }
}

/// The signed-in sender, at the locker, asks its door to open.
pub async fn drop_off(
    conn: &mut PgConnection,
    by: &Actor,
    rules: Rules<'_>,
    item_id: Uuid,
) -> Result<DroppedOff, DropoffError> {
    let sender = by.user_id().ok_or(DropoffError::NotFound)?;
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let item = items::lock(&mut tx, item_id).await?.filter(|i| i.sender_id == sender).ok_or(DropoffError::NotFound)?;
    let done = open_for_dropoff(&mut tx, by, rules, &item).await?;
    tx.commit().await.during("commit a drop-off")?;
    Ok(done)
}

/// The drop-off code typed at `point_id`'s screen opens its item's door. Wrong
/// codes count per point and per client address (`ip_key`); at a point a code
/// names no item, so no code's own tries are counted.
pub async fn drop_off_by_code(
    conn: &mut PgConnection,
    by: &Actor,
    rules: Rules<'_>,
    point_id: Uuid,
    ip_key: &str,
    raw_code: &str,
) -> Result<DroppedOff, DropoffError> {
    let point_key = format!("dropoff_fail_point:{point_id}");
    let ip_key = format!("dropoff_fail_ip:{ip_key}");
    RateLimited::check(rules.limiter.check(&point_key, WRONG_DROPOFF_CODES_PER_POINT).await)?;
    RateLimited::check(rules.limiter.check(&ip_key, WRONG_DROPOFF_CODES_PER_IP).await)?;
    let code = Code::parse(raw_code);
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let redeemed =
        codes::redeem(&mut tx, rules.pepper, point_id, None, &[PointPurpose::Dropoff], code.as_ref()).await?;
    let Ok(redeemed) = redeemed else {
        drop(tx);
        rules.limiter.hit(&point_key, WRONG_DROPOFF_CODES_PER_POINT).await;
        rules.limiter.hit(&ip_key, WRONG_DROPOFF_CODES_PER_IP).await;
        return Err(DropoffError::InvalidCode);
    };
    let item = items::lock(&mut tx, redeemed.item_id).await?.ok_or(DropoffError::InvalidCode)?;
    let done = open_for_dropoff(&mut tx, by, rules, &item).await?;
    tx.commit().await.during("commit a drop-off")?;
    Ok(done)
}

/// The one drop-off rule: a reserved item before its deadline, at an online
/// point, gets one deposit door command; asking again while it is on its way
/// (or the door is open) answers the same door and issues nothing.
pub(super) async fn open_for_dropoff(
    tx: &mut PgConnection,
    by: &Actor,
    rules: Rules<'_>,
    item: &Item,
) -> Result<DroppedOff, DropoffError> {
    if item.status != ItemStatus::Reserved {
        return Err(DropoffError::NotReserved);
    }
    let done = DroppedOff { item_id: item.id, door_no: item.door_no };
    if item.dropoff_requested_at.is_some() {
        return Ok(done);
    }
    let (heartbeat, now): (Option<DateTime<Utc>>, DateTime<Utc>) =
        sqlx::query_as("SELECT last_heartbeat_at, now() FROM locker_points WHERE id = $1")
            .bind(item.point_id)
            .fetch_one(&mut *tx)
            .await
            .during("read the item's point")?;
    if item.dropoff_by <= now {
        return Err(DropoffError::DeadlinePassed);
    }
    if !is_online(heartbeat, now, rules.doors_simulated) {
        return Err(DropoffError::PointOffline);
    }
    let command_id = doors::issue(tx, item.locker_id, Some(item.id), Reason::Deposit).await?;
    // Recorded, and the item's codes retired in the same statement: the door
    // opens once, so the code (if the app asked) is of no more use.
    sqlx::query(concat!(
        "WITH retired AS (",
        codes::retire_live!(),
        "item_id = $1)
         UPDATE items SET dropoff_requested_at = now(), updated_at = now() WHERE id = $1"
    ))
    .bind(item.id)
    .execute(&mut *tx)
    .await
    .during("record a drop-off")?;
    let entry = Entry {
        action: "item.dropoff",
        target_type: "item",
        target_id: Some(item.id.to_string()),
        before: None,
        after: Some(json!({ "door_no": item.door_no, "command_id": command_id })),
    };
    audit::record(tx, by, entry).await?;
    Ok(done)
}

/// `reserved -> cancelled`: the locker is free again (unless an admin or a
/// failed door put it in maintenance) and the item's codes die.
pub(super) async fn end_reservation(tx: &mut PgConnection, item: &Item) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE items SET status = 'cancelled', closed_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'reserved'",
    )
    .bind(item.id)
    .execute(&mut *tx)
    .await
    .during("cancel a reservation")?;
    sqlx::query("UPDATE lockers SET status = 'available', updated_at = now() WHERE id = $1 AND status = 'reserved'")
        .bind(item.locker_id)
        .execute(&mut *tx)
        .await
        .during("free a locker")?;
    codes::retire(tx, item.id, &[]).await
}
