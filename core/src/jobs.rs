//! Job payloads and the one way to enqueue them: inside the caller's
//! transaction, so a rolled-back change never sends anything.
//!
//! This module is the whole job interface the rest of the code sees (a queue
//! name, a payload type, `enqueue`); the queue engine underneath (today
//! apalis-postgres, in the `apalis` schema) can change without touching callers.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use apalis_core::task::builder::TaskBuilder;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The named queues. Each is worked with its own concurrency, so slow door
/// commands never hold up one-time codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Messages carrying one-time codes: the latency-critical path.
    Otp,
    /// Every other notification.
    Notify,
    /// Door commands to locker controllers.
    Door,
    /// Hourly billing accrual.
    Billing,
    /// Expiry sweeps.
    Sweep,
}

impl Queue {
    pub const ALL: [Queue; 5] = [Queue::Otp, Queue::Notify, Queue::Door, Queue::Billing, Queue::Sweep];

    pub fn as_str(self) -> &'static str {
        match self {
            Queue::Otp => "otp",
            Queue::Notify => "notify",
            Queue::Door => "door",
            Queue::Billing => "billing",
            Queue::Sweep => "sweep",
        }
    }

    /// How many times a job of this queue runs before it is given up.
    pub fn max_attempts(self) -> u32 {
        match self {
            Queue::Otp => 5,
            Queue::Notify => 10,
            Queue::Door => 20,
            Queue::Billing => 5,
            Queue::Sweep => 3,
        }
    }
}

impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Queue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Queue::ALL
            .into_iter()
            .find(|q| q.as_str() == s)
            .ok_or_else(|| format!("unknown queue `{s}` (known: otp, notify, door, billing, sweep)"))
    }
}

/// Deliver one outbox message (queues `otp` and `notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverNotification {
    pub notification_id: Uuid,
}

/// Sweep expired state as of `at` (unix seconds), queue `sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    pub at: i64,
}

/// How a job is enqueued beyond its payload.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Start no earlier than this long after commit.
    pub delay: Option<Duration>,
    /// Jobs with the same key in one queue are one job: the second enqueue is a no-op.
    pub idempotency_key: Option<String>,
}

/// Whether a job was written or an equal one (same idempotency key) already existed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New,
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("job payload could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("job could not be written: {0}")]
    Database(#[from] sqlx::Error),
}

/// Enqueues `job` on `queue` in the caller's transaction.
pub async fn enqueue<J: Serialize>(conn: &mut PgConnection, queue: Queue, job: &J) -> Result<(), EnqueueError> {
    enqueue_with(conn, queue, job, EnqueueOptions::default()).await.map(|_| ())
}

/// Enqueues `job` with options. A duplicate idempotency key is reported, not an
/// error, and leaves the caller's transaction usable (a savepoint absorbs it).
pub async fn enqueue_with<J: Serialize>(
    conn: &mut PgConnection,
    queue: Queue,
    job: &J,
    options: EnqueueOptions,
) -> Result<Enqueued, EnqueueError> {
    let mut builder = TaskBuilder::new(serde_json::to_vec(job)?).max_attempts(queue.max_attempts() as usize);
    if let Some(delay) = options.delay {
        builder = builder.run_after(delay);
    }
    let keyed = options.idempotency_key.is_some();
    if let Some(key) = options.idempotency_key {
        builder = builder.idempotency_key(key);
    }
    let tasks = vec![builder.build()];
    if !keyed {
        apalis_postgres::queries::push_tasks(conn, queue.as_str(), tasks).await.map_err(into_sqlx)?;
        return Ok(Enqueued::New);
    }
    sqlx::query("SAVEPOINT lockers_enqueue").execute(&mut *conn).await?;
    match apalis_postgres::queries::push_tasks(conn, queue.as_str(), tasks).await.map_err(into_sqlx) {
        Ok(()) => {
            sqlx::query("RELEASE SAVEPOINT lockers_enqueue").execute(&mut *conn).await?;
            Ok(Enqueued::New)
        }
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            sqlx::query("ROLLBACK TO SAVEPOINT lockers_enqueue").execute(&mut *conn).await?;
            Ok(Enqueued::Duplicate)
        }
        Err(e) => Err(e.into()),
    }
}

fn into_sqlx(e: apalis_postgres::Error) -> sqlx::Error {
    match e {
        apalis_postgres::Error::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Creates the queue's own tables (schema `apalis`, its own migration history).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    apalis_postgres::PostgresStorage::setup(pool).await.context("Failed to apply the job queue's migrations")
}

/// Counts of one queue's jobs by state, for the CLI and metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct QueueStats {
    pub queue: String,
    pub ready: i64,
    pub scheduled: i64,
    pub running: i64,
    pub retrying: i64,
    pub dead: i64,
    /// Seconds the oldest ready job has waited.
    pub oldest_ready_secs: Option<f64>,
}

/// Per-queue depth and state counts.
pub async fn stats(pool: &PgPool) -> Result<Vec<QueueStats>, sqlx::Error> {
    sqlx::query_as(
        "SELECT job_type AS queue,
                count(*) FILTER (WHERE status = 'Pending' AND run_at <= now()) AS ready,
                count(*) FILTER (WHERE status = 'Pending' AND run_at > now()) AS scheduled,
                count(*) FILTER (WHERE status IN ('Queued', 'Running')) AS running,
                count(*) FILTER (WHERE status = 'Failed' AND attempts < max_attempts) AS retrying,
                count(*) FILTER (WHERE status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts)) AS dead,
                EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE status = 'Pending' AND run_at <= now()))::float8
                    AS oldest_ready_secs
         FROM apalis.jobs GROUP BY job_type ORDER BY job_type",
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_round_trip() {
        for q in Queue::ALL {
            assert_eq!(q.as_str().parse::<Queue>(), Ok(q));
        }
        assert!("mail".parse::<Queue>().is_err());
    }
}
