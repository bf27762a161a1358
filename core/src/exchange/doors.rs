//! Door commands: one row per physical open, whose id is the controller's
//! `Idempotency-Key`, so sending it again never pulses the door twice.
//!
//! States and who moves them: `pending` (written by [`issue`], in the
//! transaction of the change that needs the door open) -> `sent` (the door
//! worker, [`begin_attempt`], before each call to the controller) -> `acked`
//! ([`acknowledged`], when the controller answers the open) or `failed`
//! ([`failed`], when it refuses or retries run out). `acked` and `failed` are
//! final; a later run of the same job finds them and sends nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{Acquire, FromRow, PgConnection, PgPool, Row};
use uuid::Uuid;

use super::{ExchangeError, lifecycle};
use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};
use crate::jobs::{self, EnqueueError, EnqueueOptions, OpenDoor, Queue};

/// How long a door's latch is pulsed, in milliseconds (protocol v1).
pub const PULSE_MS: u32 = 500;

/// Why a door opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Deposit,
    Pickup,
    Return,
    ForceClear,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Deposit => "deposit",
            Reason::Pickup => "pickup",
            Reason::Return => "return",
            Reason::ForceClear => "force_clear",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Reason::Deposit, Reason::Pickup, Reason::Return, Reason::ForceClear].into_iter().find(|r| r.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Sent,
    Acked,
    Failed,
    /// Never sent: its item stopped waiting for this open (see [`begin_attempt`]).
    Void,
}

impl Status {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Status::Pending),
            "sent" => Some(Status::Sent),
            "acked" => Some(Status::Acked),
            "failed" => Some(Status::Failed),
            "void" => Some(Status::Void),
            _ => None,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Acked | Status::Failed | Status::Void)
    }
}

/// One door command as stored.
#[derive(Debug, Clone, Serialize)]
pub struct DoorCommand {
    pub id: Uuid,
    pub locker_id: Uuid,
    pub item_id: Option<Uuid>,
    pub reason: Reason,
    pub status: Status,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub acked_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl FromRow<'_, PgRow> for DoorCommand {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let text = |column: &str| -> Result<String, sqlx::Error> { row.try_get(column) };
        let bad = |column: &str, value: String| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: format!("unexpected value `{value}`").into(),
        };
        let reason = text("reason")?;
        let status = text("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            locker_id: row.try_get("locker_id")?,
            item_id: row.try_get("item_id")?,
            reason: Reason::parse(&reason).ok_or_else(|| bad("reason", reason.clone()))?,
            status: Status::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            acked_at: row.try_get("acked_at")?,
            failed_at: row.try_get("failed_at")?,
            closed_at: row.try_get("closed_at")?,
        })
    }
}

/// The columns [`DoorCommand`] reads, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "id, locker_id, item_id, reason, status, attempts, last_error, created_at, acked_at, failed_at, closed_at"
    };
}

/// Writes a command to open `locker_id`'s door and enqueues it on the `door`
/// queue, in the caller's transaction: a rolled-back change opens nothing.
pub async fn issue(
    conn: &mut PgConnection,
    locker_id: Uuid,
    item_id: Option<Uuid>,
    reason: Reason,
) -> Result<Uuid, EnqueueError> {
    let id = Uuid::now_v7();
    // The command and its job (keyed by the command id) in one statement: one round trip per open.
    let query = sqlx::query(concat!(
        "WITH command AS (INSERT INTO door_commands (id, locker_id, item_id, reason) VALUES ($7, $8, $9, $10)), ",
        jobs::enqueue_keyed!()
    ));
    let options = EnqueueOptions { idempotency_key: Some(id.to_string()), ..EnqueueOptions::default() };
    jobs::bind_keyed(query, Queue::Door, &OpenDoor { command_id: id }, options)?
        .bind(id)
        .bind(locker_id)
        .bind(item_id)
        .bind(reason.as_str())
        .execute(&mut *conn)
        .await
        .during("write a door command and enqueue it")?;
    crate::telemetry::metrics::job_enqueued(Queue::Door, 1);
    Ok(id)
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<DoorCommand>, DbError> {
    sqlx::query_as(concat!("SELECT ", columns!(), " FROM door_commands WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .during("load a door command")
}

/// What one attempt sends: the door, where its controller is, why it opens.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub command_id: Uuid,
    pub reason: Reason,
    pub locker_id: Uuid,
    pub point_id: Uuid,
    pub door_no: i32,
    /// The point's controller (protocol v1); none under the simulated driver.
    pub controller_url: Option<String>,
    /// The generation of the point's controller token, which the driver derives
    /// (`places::ControllerKey::token`) for each send.
    pub token_generation: i32,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Marks an attempt begun (`pending`/`sent` -> `sent`, one more attempt) and
/// returns what to send; none when the command is final (a duplicate or late
/// run of its job sends nothing). Sending again after a crash is safe: the
/// controller answers a repeated `Idempotency-Key` without pulsing again.
pub async fn begin_attempt(pool: &PgPool, id: Uuid) -> Result<Option<Outbound>, DbError> {
    // An open its item no longer waits for is never sent: a pickup retried
    // after a force-clear emptied the locker would otherwise open it on the
    // next sender's parcel. Such a command becomes `void`. Either way one
    // statement, so one round trip and one commit per attempt.
    let row = sqlx::query(
        "UPDATE door_commands c
         SET status = CASE WHEN w.unwanted THEN 'void' ELSE 'sent' END,
             attempts = c.attempts + CASE WHEN w.unwanted THEN 0 ELSE 1 END,
             sent_at = CASE WHEN w.unwanted THEN c.sent_at ELSE coalesce(c.sent_at, now()) END,
             failed_at = CASE WHEN w.unwanted THEN now() ELSE c.failed_at END,
             last_error = CASE WHEN w.unwanted THEN 'void: the item no longer waits for this open'
                               ELSE c.last_error END
         FROM (SELECT l.point_id, l.door_no, p.controller_url, p.controller_token_generation,
                      coalesce(i.status <> CASE d.reason WHEN 'deposit' THEN 'reserved' WHEN 'pickup' THEN 'stored'
                                                         WHEN 'return' THEN 'expired' ELSE i.status END,
                               false) AS unwanted
               FROM door_commands d
               JOIN lockers l ON l.id = d.locker_id JOIN locker_points p ON p.id = l.point_id
               LEFT JOIN items i ON i.id = d.item_id
               WHERE d.id = $1) AS w
         WHERE c.id = $1 AND c.status IN ('pending', 'sent')
         RETURNING w.unwanted, c.id, c.reason, c.locker_id, w.point_id, w.door_no, c.attempts, c.created_at,
                   w.controller_url, w.controller_token_generation",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .during("begin a door command attempt")?;
    if let Some(row) = &row
        && row.try_get::<bool, _>("unwanted").during("read a door command attempt")?
    {
        tracing::warn!(command_id = %id, "door command void: its item no longer waits for this open; not sent");
        return Ok(None);
    }
    let Some(row) = row else { return Ok(None) };
    let decode = || -> Result<Outbound, sqlx::Error> {
        let reason: String = row.try_get("reason")?;
        Ok(Outbound {
            command_id: row.try_get("id")?,
            reason: Reason::parse(&reason).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "reason".into(),
                source: format!("unexpected value `{reason}`").into(),
            })?,
            locker_id: row.try_get("locker_id")?,
            point_id: row.try_get("point_id")?,
            door_no: row.try_get("door_no")?,
            controller_url: row.try_get("controller_url")?,
            token_generation: row.try_get("controller_token_generation")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
        })
    };
    decode().map(Some).during("read a door command attempt")
}

/// Records why an attempt did not get through (it will be tried again).
pub async fn attempt_failed(pool: &PgPool, id: Uuid, error: &str) -> Result<(), DbError> {
    sqlx::query("UPDATE door_commands SET last_error = $2 WHERE id = $1 AND status = 'sent'")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await
        .during("record a door command error")?;
    Ok(())
}

/// The controller opened the door: `sent` -> `acked`, then what the open
/// means for its item and locker ([`lifecycle::door_opened`]), in one
/// transaction. A repeat (a duplicate run, a replay) changes nothing.
pub async fn acknowledged(conn: &mut PgConnection, by: &Actor, id: Uuid) -> Result<(), ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    acknowledge_in(&mut tx, by, id).await?;
    tx.commit().await.during("commit a door acknowledgement")?;
    Ok(())
}

/// [`acknowledged`] inside the caller's transaction; the command when this
/// call acknowledged it. Also used when a controller reports the door opened
/// or closed before its answer to the open reached us: the report proves it.
pub(super) async fn acknowledge_in(
    tx: &mut PgConnection,
    by: &Actor,
    id: Uuid,
) -> Result<Option<DoorCommand>, ExchangeError> {
    // The acknowledgement and its audit entry (the command as it now is) in one statement.
    let (actor_id, client_ip, request_id) = by.audit_binds();
    let command: Option<DoorCommand> = sqlx::query_as(concat!(
        "WITH acked AS (
             UPDATE door_commands SET status = 'acked', acked_at = now(), last_error = NULL
             WHERE id = $1 AND status IN ('pending', 'sent') RETURNING ",
        columns!(),
        "), logged AS (",
        audit::insert_entry!(),
        " SELECT $2, 'door.opened', 'door_command', id::text, NULL, to_jsonb(acked), $3::inet, $4 FROM acked)
         SELECT * FROM acked"
    ))
    .bind(id)
    .bind(actor_id)
    .bind(client_ip)
    .bind(request_id)
    .fetch_optional(&mut *tx)
    .await
    .during("acknowledge a door command")?;
    if let Some(command) = &command {
        crate::telemetry::metrics::business(crate::telemetry::metrics::name::DOOR_COMMANDS_OPENED, 1);
        lifecycle::door_opened(tx, by, command).await?;
    }
    Ok(command)
}

/// The controller refused the open or retries ran out: `-> failed`, then
/// what that means for the item and locker ([`lifecycle::door_failed`]:
/// maintenance, an alert to admins), in one transaction. A repeat changes nothing.
pub async fn failed(conn: &mut PgConnection, by: &Actor, id: Uuid, error: &str) -> Result<(), ExchangeError> {
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let command: Option<DoorCommand> = sqlx::query_as(concat!(
        "UPDATE door_commands SET status = 'failed', failed_at = now(), last_error = $2
         WHERE id = $1 AND status IN ('pending', 'sent') RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(error)
    .fetch_optional(&mut *tx)
    .await
    .during("fail a door command")?;
    let failed_one = command.is_some();
    if let Some(command) = command {
        lifecycle::door_failed(&mut tx, by, &command, error).await?;
        audit::record(&mut tx, by, Entry::change("door.failed", "door_command", id, None::<&()>, Some(&command)))
            .await?;
    }
    tx.commit().await.during("commit a door failure")?;
    if failed_one {
        crate::telemetry::metrics::business(crate::telemetry::metrics::name::DOOR_FAILURES, 1);
    }
    Ok(())
}

/// Commands one sweep fails at most; the next sweep takes the rest.
const STUCK_BATCH: i64 = 100;

/// Commands still in flight (`pending`, `sent`) created at or before `$1`,
/// oldest first, at most `$2`. Served by `door_commands_in_flight_idx`.
pub const STUCK_COMMANDS: &str = "SELECT id FROM door_commands WHERE status IN ('pending', 'sent') AND created_at <= $1
     ORDER BY created_at LIMIT $2";

/// Fails every command still `pending` or `sent` that was created `stuck_after`
/// or longer before `now`, through [`failed`] (so its lifecycle runs: locker
/// to maintenance, admins alerted, the item's state says what happened).
/// The door worker fails a command itself when its retry window runs out;
/// this catches the ones whose job the engine marked dead without that run
/// (e.g. the process died during the last attempt). `stuck_after` must exceed
/// the retry window plus the longest run and the rescue delay, so no live
/// run is overtaken. Returns how many it failed.
pub async fn fail_stuck(
    conn: &mut PgConnection,
    by: &Actor,
    now: DateTime<Utc>,
    stuck_after: std::time::Duration,
) -> Result<u64, ExchangeError> {
    let before = now - chrono::Duration::from_std(stuck_after).unwrap_or(chrono::Duration::MAX);
    let stuck: Vec<Uuid> = sqlx::query_scalar(STUCK_COMMANDS)
        .bind(before)
        .bind(STUCK_BATCH)
        .fetch_all(&mut *conn)
        .await
        .during("find stuck door commands")?;
    let error =
        format!("no outcome {}s after the command was issued (its job ended without one)", stuck_after.as_secs());
    for id in &stuck {
        failed(conn, by, *id, &error).await?;
    }
    Ok(stuck.len() as u64)
}

/// Marks the door closed after `command`'s open; false when it already was
/// (a replayed event). Part of [`super::events`].
pub(super) async fn mark_closed(conn: &mut PgConnection, id: Uuid) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE door_commands SET closed_at = now() WHERE id = $1 AND closed_at IS NULL")
        .bind(id)
        .execute(conn)
        .await
        .during("mark a door closed")?;
    Ok(done.rows_affected() == 1)
}

/// The latest open command of door `door_no` at `point_id`.
pub(super) async fn latest_for_door(
    conn: &mut PgConnection,
    point_id: Uuid,
    door_no: i32,
) -> Result<Option<DoorCommand>, DbError> {
    sqlx::query_as(concat!(
        "SELECT ",
        columns!(),
        " FROM door_commands WHERE locker_id = (SELECT id FROM lockers WHERE point_id = $1 AND door_no = $2)
         ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(point_id)
    .bind(door_no)
    .fetch_optional(conn)
    .await
    .during("find a door's latest command")
}
