//! What a point's controller reports (protocol v1): a door opened or closed,
//! and heartbeats. The simulated door driver reports through the same use
//! case, so development runs the path real controllers take.

use serde::{Deserialize, Serialize};
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::{ExchangeError, doors, lifecycle};
use crate::audit::Actor;
use crate::db::{DbError, During};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ControllerEventKind)]
pub enum Kind {
    DoorOpened,
    DoorClosed,
    Heartbeat,
}

/// One event as a controller sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// Absent only for heartbeats.
    pub door_no: Option<i32>,
    /// The open this event follows; none means the door's latest.
    pub command_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The point has no door with this number.
    #[error("no such door at this point")]
    UnknownDoor,
    /// The command id names no open of this door (another point's, another
    /// door's, or none at all).
    #[error("the command is not this door's")]
    ForeignCommand,
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for EventError {
    fn from(e: DbError) -> Self {
        Self::Exchange(e.into())
    }
}

/// Records `event` from the controller of `point_id` (the caller has checked
/// its token). Replays are harmless: a door closed twice is closed once.
pub async fn record(conn: &mut PgConnection, by: &Actor, point_id: Uuid, event: Event) -> Result<(), EventError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    record_in(&mut tx, by, point_id, event).await?;
    tx.commit().await.during("commit a controller event")?;
    Ok(())
}

/// A door the simulated driver opened and, at once, closed: the open's
/// acknowledgement (as [`doors::acknowledged`], by `by`) and the close as the
/// point's controller reports it (as [`record`], by `controller`) in one
/// transaction instead of two. The same rows and audit entries, one commit
/// less per door command.
pub async fn opened_and_closed(
    conn: &mut PgConnection,
    by: &Actor,
    controller: &Actor,
    point_id: Uuid,
    command_id: Uuid,
    door_no: i32,
) -> Result<(), EventError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    doors::acknowledge_in(&mut tx, by, command_id).await?;
    let closed = Event { kind: Kind::DoorClosed, door_no: Some(door_no), command_id: Some(command_id) };
    record_in(&mut tx, controller, point_id, closed).await?;
    tx.commit().await.during("commit a door open and close")?;
    Ok(())
}

/// [`record`] inside the caller's transaction.
async fn record_in(tx: &mut PgConnection, by: &Actor, point_id: Uuid, event: Event) -> Result<(), EventError> {
    // At most one write a second, and none while another transaction holds
    // the row (it is refreshing the heartbeat itself): every event of a busy
    // point would otherwise queue on this one row until the holder commits,
    // and the queue feeds itself (measured: waits of 1 to 3 s at one point
    // with 128 doors). "Online" is judged over a window of many seconds.
    // The heartbeat and the door's lookup share one round trip.
    let door_no = match event.kind {
        Kind::Heartbeat => None,
        _ => Some(event.door_no.ok_or(EventError::UnknownDoor)?),
    };
    let locker: Option<(Uuid,)> = sqlx::query_as(
        "WITH beat AS (
             UPDATE locker_points SET last_heartbeat_at = now()
             WHERE id = (SELECT id FROM locker_points
                         WHERE id = $1 AND (last_heartbeat_at IS NULL OR last_heartbeat_at < now() - interval '1 second')
                         FOR NO KEY UPDATE SKIP LOCKED))
         SELECT id FROM lockers WHERE point_id = $1 AND door_no = $2",
    )
    .bind(point_id)
    .bind(door_no)
    .fetch_optional(&mut *tx)
    .await
    .during("record a heartbeat and find a door")?;
    if let Some(door_no) = door_no {
        let (locker_id,) = locker.ok_or(EventError::UnknownDoor)?;
        let latest = doors::latest_for_door(&mut *tx, point_id, door_no).await?;
        // Only the door's latest open counts: an event about an older one is stale.
        let command = match (event.command_id, latest) {
            (Some(id), Some(latest)) if latest.id == id => Some(latest),
            (Some(id), _) => {
                let known = doors::get(&mut *tx, id).await?;
                match known {
                    Some(c) if c.locker_id == locker_id => None,
                    _ => return Err(EventError::ForeignCommand),
                }
            }
            (None, latest) => latest,
        };
        // A report that the door opened or closed proves the open: it may
        // arrive before the controller's answer to the open reaches us. Only
        // a report naming the command does: a stray report without one must
        // not acknowledge an open that was just issued.
        let command = match command {
            Some(c)
                if event.command_id == Some(c.id)
                    && (c.status == doors::Status::Pending || c.status == doors::Status::Sent) =>
            {
                match doors::acknowledge_in(&mut *tx, by, c.id).await? {
                    Some(acked) => Some(acked),
                    // Acknowledged meanwhile by the door worker: read it as it is now.
                    None => doors::get(&mut *tx, c.id).await?,
                }
            }
            other => other,
        };
        match event.kind {
            Kind::DoorOpened => lifecycle::door_reported_open(&mut *tx, by, locker_id, command.as_ref()).await?,
            Kind::DoorClosed => {
                if let Some(command) = command.filter(|c| c.status == doors::Status::Acked)
                    && doors::mark_closed(&mut *tx, command.id).await?
                {
                    lifecycle::door_closed(&mut *tx, by, &command).await?;
                }
            }
            Kind::Heartbeat => {}
        }
    }
    Ok(())
}
