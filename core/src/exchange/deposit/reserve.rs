//! Reserving a locker: by id, or any free one of a size at a point.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::*;
use crate::accounts::contact::{Email, Phone};
use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::codes::{self, PointPurpose};
use crate::exchange::items::{self, Item};
use crate::jobs::EnqueueError;
use crate::messaging::otp::Code;
use crate::places::lockers::Size;
use crate::places::{ONLINE_WINDOW_SECS, is_online};

#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    /// The caller is not a signed-in, enabled user.
    #[error("only a signed-in user can deposit")]
    NoSender,
    #[error("prove your email before depositing")]
    EmailNotVerified,
    #[error("you already hold {0} reservations not dropped off; drop one off or cancel it first")]
    TooManyReservations(u32),
    #[error("no such locker")]
    LockerNotFound,
    #[error("no such locker point")]
    PointNotFound,
    #[error("the locker point is offline")]
    PointOffline,
    /// The locker is reserved, occupied or in maintenance (or a concurrent deposit won it).
    #[error("the locker is not available")]
    LockerUnavailable,
    #[error("no locker of that size is available at this point")]
    NoLockerAvailable,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for DepositError {
    fn from(e: DbError) -> Self {
        // The backstop of the atomic reservation: one active item per locker.
        if e.constraint() == Some("items_one_active_per_locker") {
            return Self::LockerUnavailable;
        }
        Self::Exchange(e.into())
    }
}

impl From<EnqueueError> for DepositError {
    fn from(e: EnqueueError) -> Self {
        Self::Exchange(e.into())
    }
}

/// Reserves a locker for a new item and issues its drop-off code (valid until
/// the drop-off deadline); no door opens yet. Of concurrent deposits for one
/// locker exactly one wins: the locker goes `available -> reserved` by a
/// conditional update (a size at a point picks with `SKIP LOCKED`), and the
/// unique index of active items per locker backs it up. One sender's deposits
/// queue on their user row, so the open-reservation limit holds under races.
pub async fn reserve(
    conn: &mut PgConnection,
    by: &Actor,
    rules: Rules<'_>,
    new: NewDeposit,
) -> Result<(Item, Code), DepositError> {
    let sender_id = by.user_id().ok_or(DepositError::NoSender)?;
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let sender: Option<(String, bool)> = sqlx::query_as(
        "SELECT email, email_verified_at IS NOT NULL FROM users WHERE id = $1 AND disabled_at IS NULL
         FOR NO KEY UPDATE",
    )
    .bind(sender_id)
    .fetch_optional(&mut *tx)
    .await
    .during("lock the sender")?;
    let (sender_email, verified) = sender.ok_or(DepositError::NoSender)?;
    if !verified {
        return Err(DepositError::EmailNotVerified);
    }
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE sender_id = $1 AND status = 'reserved'")
        .bind(sender_id)
        .fetch_one(&mut *tx)
        .await
        .during("count open reservations")?;
    if open >= i64::from(rules.max_open_reservations) {
        return Err(DepositError::TooManyReservations(rules.max_open_reservations));
    }
    let locker_id = match new.place {
        Place::Locker(id) => reserve_locker(&mut tx, rules, id).await?,
        Place::Point { point_id, size, allow_larger } => {
            reserve_at_point(&mut tx, rules, point_id, size, allow_larger).await?
        }
    };
    let id = Uuid::now_v7();
    let item: Item = sqlx::query_as(concat!(
        "WITH i AS (
             INSERT INTO items (id, locker_id, size, sender_id, name, description, receiver_phone, receiver_email,
                                dropoff_by, pickup_window_secs)
             SELECT $1, $2, l.size, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $9
             FROM lockers l WHERE l.id = $2
             RETURNING *)
         SELECT ",
        items::item_columns!(),
        " FROM i JOIN lockers l ON l.id = i.locker_id"
    ))
    .bind(id)
    .bind(locker_id)
    .bind(sender_id)
    .bind(&new.name.0)
    .bind(new.description.as_ref().map(|d| d.0.as_str()))
    .bind(new.receiver.phone.as_ref().map(Phone::as_str))
    .bind(new.receiver.email.as_ref().map(Email::as_str))
    .bind(rules.dropoff_window.as_secs_f64())
    .bind(i32::try_from(rules.pickup_window.as_secs()).unwrap_or(i32::MAX))
    .fetch_optional(&mut *tx)
    .await
    .during("reserve an item")?
    .ok_or_else(|| missing("read a new item"))?;
    let code = codes::issue(
        &mut tx,
        rules.pepper,
        item.point_id,
        item.id,
        PointPurpose::Dropoff,
        &sender_email,
        item.dropoff_by,
    )
    .await?;
    audit::record(&mut tx, by, Entry::change("item.reserve", "item", item.id, None::<&()>, Some(&item))).await?;
    tx.commit().await.during("commit a reservation")?;
    Ok((item, code))
}

/// `available -> reserved` for `locker_id` if its point is online; else why not.
pub(super) async fn reserve_locker(
    tx: &mut PgConnection,
    rules: Rules<'_>,
    locker_id: Uuid,
) -> Result<Uuid, DepositError> {
    let won: Option<Uuid> = sqlx::query_scalar(
        "UPDATE lockers l SET status = 'reserved', updated_at = now()
         FROM locker_points p
         WHERE l.id = $1 AND l.status = 'available' AND p.id = l.point_id
           AND ($2 OR p.last_heartbeat_at > now() - make_interval(secs => $3))
         RETURNING l.id",
    )
    .bind(locker_id)
    .bind(rules.doors_simulated)
    .bind(ONLINE_WINDOW_SECS as f64)
    .fetch_optional(&mut *tx)
    .await
    .during("reserve a locker")?;
    if let Some(id) = won {
        return Ok(id);
    }
    let found: Option<(Option<DateTime<Utc>>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT p.last_heartbeat_at, now() FROM lockers l JOIN locker_points p ON p.id = l.point_id WHERE l.id = $1",
    )
    .bind(locker_id)
    .fetch_optional(&mut *tx)
    .await
    .during("read a locker")?;
    match found {
        None => Err(DepositError::LockerNotFound),
        Some((heartbeat, now)) if !is_online(heartbeat, now, rules.doors_simulated) => Err(DepositError::PointOffline),
        Some(_) => Err(DepositError::LockerUnavailable),
    }
}

/// Reserves the first free locker of the sizes to try at an online point
/// (skipping lockers other deposits hold locked: they are being taken).
pub(super) async fn reserve_at_point(
    tx: &mut PgConnection,
    rules: Rules<'_>,
    point_id: Uuid,
    size: Size,
    allow_larger: bool,
) -> Result<Uuid, DepositError> {
    let point: Option<(Option<DateTime<Utc>>, DateTime<Utc>)> =
        sqlx::query_as("SELECT last_heartbeat_at, now() FROM locker_points WHERE id = $1")
            .bind(point_id)
            .fetch_optional(&mut *tx)
            .await
            .during("read a locker point")?;
    let (heartbeat, now) = point.ok_or(DepositError::PointNotFound)?;
    if !is_online(heartbeat, now, rules.doors_simulated) {
        return Err(DepositError::PointOffline);
    }
    let sizes = sizes_to_try(size, allow_larger);
    let won: Option<Uuid> = sqlx::query_scalar(
        "UPDATE lockers SET status = 'reserved', updated_at = now()
         WHERE status = 'available' AND id = (
             SELECT l.id FROM lockers l
             WHERE l.point_id = $1 AND l.status = 'available' AND l.size = ANY($2)
             ORDER BY array_position($2, l.size::text), l.door_no
             LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(point_id)
    .bind(&sizes)
    .fetch_optional(&mut *tx)
    .await
    .during("reserve a locker at a point")?;
    won.ok_or(DepositError::NoLockerAvailable)
}

pub(super) fn missing(operation: &'static str) -> DbError {
    DbError { operation, source: sqlx::Error::RowNotFound }
}
