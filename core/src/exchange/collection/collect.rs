//! Typing a pickup or return code: a right code issues the door command in
//! the same transaction that consumes it; the item changes when the
//! controller acknowledges the open ([`super::outcomes`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::{Collection, Place, ip_key, limits, quote};
use crate::audit::{self, Actor, Entry};
use crate::billing::{DefaultTariff, Money, PriceList};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::codes::{self, PointPurpose, Rejected};
use crate::exchange::doors::{self, Reason};
use crate::exchange::items::ItemStatus;
use crate::messaging::codes::RateLimited;
use crate::messaging::otp::Code;
use crate::places::lockers::Size;

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The place or the caller's address spent its wrong codes for now.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// Wrong, expired, used, out of tries, or another place's: one answer for all.
    #[error("the code is wrong, expired or already used")]
    InvalidCode,
    /// The place's controller has not been heard from lately: no door could
    /// open, so the code is neither tried nor spent (try again later).
    #[error("the locker point is offline")]
    PointOffline,
    /// The code was right but its item can no longer be opened for it (it
    /// expired, was force-cleared, or its door is already opening). The code is spent.
    #[error("this item cannot be collected now")]
    ItemUnavailable,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for CollectError {
    fn from(e: DbError) -> Self {
        Self::Exchange(e.into())
    }
}

/// A door opening for a collect, as answered before the controller acknowledges.
#[derive(Debug, Clone, Serialize)]
pub struct Opening {
    pub item_id: Uuid,
    pub door_no: i32,
    /// The item's status now: `stored` (or `expired` for a return) until the
    /// controller acknowledges the open; then `collected` (`returned`).
    pub status: ItemStatus,
    pub command_id: Uuid,
    pub requested_at: DateTime<Utc>,
    /// What the stay costs if the door opens now: every hour started by
    /// `requested_at`. Billing closes at the acknowledgement; if that crosses
    /// an hour boundary the ledger (and the sender's message) carry one hour more.
    pub amount: Money,
    pub hours: i32,
}

impl Collection {
    /// `POST /lockers/{id}/pickup/collect` and `POST /locker-points/{id}/pickup/collect`.
    /// A code works once (of racing collects with it exactly one wins), only
    /// at its own locker (or its own point), for its own item. A wrong code
    /// counts a try against the locker item's live codes (at a locker; 5 and
    /// they are dead) and against the place's and the address's hourly
    /// allowances ([`limits`]).
    pub async fn collect(
        &self,
        conn: &mut PgConnection,
        by: &Actor,
        place: Place,
        raw_code: &str,
    ) -> Result<Opening, CollectError> {
        let ip = ip_key(by);
        limits::may_guess(&self.limiter, place, &ip).await?;
        let locker_id = match place {
            Place::Point(_) => None,
            Place::Locker(id) => Some(id),
        };
        // The place's point and its last heartbeat, in one read.
        let point: Option<(Uuid, Option<DateTime<Utc>>, DateTime<Utc>)> = sqlx::query_as(
            "SELECT p.id, p.last_heartbeat_at, now() FROM locker_points p
             WHERE p.id = coalesce($1, (SELECT point_id FROM lockers WHERE id = $2))",
        )
        .bind(match place {
            Place::Point(id) => Some(id),
            Place::Locker(_) => None,
        })
        .bind(locker_id)
        .fetch_optional(&mut *conn)
        .await
        .during("find the place's point")?;
        let Some((point_id, last_heartbeat, now)) = point else {
            limits::wrong(&self.limiter, place, &ip).await;
            return Err(CollectError::InvalidCode);
        };
        // An offline point: refused before the code is looked at, so a right
        // code is not spent on a door that cannot open (it would fail for good
        // at the end of the door's retry window), and nothing is learned about codes.
        let simulated = self.config.door_driver == crate::config::DoorDriver::Simulated;
        if !crate::places::is_online(last_heartbeat, now, simulated) {
            return Err(CollectError::PointOffline);
        }
        let code = Code::parse(raw_code);
        let mut tx = conn.begin().await.during("begin a transaction")?;
        let purposes = [PointPurpose::Pickup, PointPurpose::Return];
        let redeemed =
            codes::redeem(&mut tx, self.codes.pepper(), point_id, locker_id, &purposes, code.as_ref()).await?;
        let redeemed = match redeemed {
            Ok(redeemed) => redeemed,
            Err(Rejected::Wrong) => {
                // The counted try must stand whatever the answer.
                tx.commit().await.during("commit a counted try")?;
                limits::wrong(&self.limiter, place, &ip).await;
                return Err(CollectError::InvalidCode);
            }
            // The right code, taken by a racing collect: not a guess.
            Err(Rejected::AlreadyUsed) => return Err(CollectError::InvalidCode),
        };
        let (reason, wanted) = match redeemed.purpose {
            PointPurpose::Return => (Reason::Return, ItemStatus::Expired),
            PointPurpose::Pickup => (Reason::Pickup, ItemStatus::Stored),
            // Not among the purposes asked for; a drop-off code never opens a pickup.
            PointPurpose::Dropoff => return Err(CollectError::InvalidCode),
        };
        // The item's rule and the collect's write in one statement: the row
        // lock it takes orders it with the sweep, force-clear and the door's outcomes.
        // The price of the item's size in force now is recorded with the
        // collect (the acknowledgement bills with it), picked in the statement
        // itself so the collect stays one round trip.
        let tariffs = self.tariffs();
        let price = |size| tariffs.for_size(size).minor_per_hour;
        // One way in per item: its other live codes die with this one, in the
        // same statement and only when the collect was recorded.
        let recorded: Option<(Uuid, i32, DateTime<Utc>, i64)> = sqlx::query_as(concat!(
            "WITH recorded AS (
                 UPDATE items i SET collect_requested_at = now(),
                                    collect_tariff_paise = CASE i.size WHEN 'S' THEN $4 WHEN 'M' THEN $5
                                                                       WHEN 'L' THEN $6 WHEN 'XL' THEN $7 ELSE $8 END,
                                    collect_currency = $3, updated_at = now()
                 FROM lockers l
                 WHERE i.id = $1 AND l.id = i.locker_id AND i.status = $2 AND i.collect_requested_at IS NULL
                   AND (i.status <> 'expired' OR (i.return_by > now() AND i.abandoned_at IS NULL))
                 RETURNING i.id, i.locker_id, l.door_no, i.collect_requested_at, i.collect_tariff_paise),
             retired AS (",
            codes::retire_live!(),
            "item_id = (SELECT id FROM recorded) AND purpose IN ('pickup', 'return'))
             SELECT locker_id, door_no, collect_requested_at, collect_tariff_paise FROM recorded"
        ))
        .bind(redeemed.item_id)
        .bind(wanted.as_str())
        .bind(tariffs.currency())
        .bind(price(Size::S))
        .bind(price(Size::M))
        .bind(price(Size::L))
        .bind(price(Size::Xl))
        .bind(tariffs.default_price().minor)
        .fetch_optional(&mut *tx)
        .await
        .during("record a collect")?;
        let Some((locker_id, door_no, now, minor_per_hour)) = recorded else {
            // Expired, force-cleared or already opening meanwhile: the code is spent all the same.
            tx.commit().await.during("commit a spent code")?;
            return Err(CollectError::ItemUnavailable);
        };
        let tariff = DefaultTariff { minor_per_hour, currency: tariffs.currency().to_owned() };
        let item_id = redeemed.item_id;
        let command_id = doors::issue(&mut tx, locker_id, Some(item_id), reason).await.map_err(ExchangeError::from)?;
        let (amount, hours) = quote(&mut tx, item_id, now, &tariff).await?;
        let entry = Entry {
            action: if reason == Reason::Return { "item.return_requested" } else { "item.collect_requested" },
            target_type: "item",
            target_id: Some(item_id.to_string()),
            before: None,
            after: Some(json!({ "command_id": command_id, "door_no": door_no, "amount_paise": amount.minor })),
        };
        audit::record(&mut tx, by, entry).await?;
        tx.commit().await.during("commit a collect")?;
        Ok(Opening { item_id, door_no, status: wanted, command_id, requested_at: now, amount, hours })
    }
}
