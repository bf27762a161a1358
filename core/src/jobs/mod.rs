//! Job payloads and the one way to enqueue them: inside the caller's
//! transaction, so a rolled-back change never sends anything.
//!
//! This module is the whole job interface the rest of the code sees (a queue
//! name, a payload type, `enqueue`); the operator's view (stats, dead jobs,
//! the audited retry) is [`admin`]. The worker side of the same table (claim,
//! acknowledge, rescue) is the engine's (`workers/src/engine/claims.rs`); the
//! table itself in migrations/0003_job_queue.sql.

pub mod admin;
pub mod backoff;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::postgres::{PgArguments, Postgres};
use sqlx::query::Query;
use uuid::Uuid;

use crate::db::{DbError, During};

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
            // Enough that DOOR_RETRY_WINDOW_SECS (10 minutes) ends a door command's
            // retries first: 40 runs take at least 17 minutes at the default backoff.
            Queue::Door => 40,
            Queue::Billing => 5,
            Queue::Sweep => 3,
        }
    }

    /// How long one run may take before it is cancelled and retried, unless
    /// `JOB_TIMEOUT_SECS` says otherwise.
    pub fn default_timeout(self) -> Duration {
        Duration::from_secs(match self {
            Queue::Otp => 30,
            Queue::Notify => 60,
            Queue::Door => 30,
            Queue::Billing => 300,
            Queue::Sweep => 300,
        })
    }
}

/// Per-queue run timeouts, written `door=10,billing=600` (seconds); queues
/// left out keep `Queue::default_timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueTimeouts(Vec<(Queue, Duration)>);

impl QueueTimeouts {
    pub fn get(&self, queue: Queue) -> Duration {
        self.0.iter().find(|(q, _)| *q == queue).map_or_else(|| queue.default_timeout(), |(_, t)| *t)
    }
}

impl FromStr for QueueTimeouts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<(Queue, Duration)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, secs) = part.split_once('=').ok_or_else(|| format!("`{part}` is not `queue=seconds`"))?;
            let queue: Queue = name.trim().parse()?;
            let secs: u64 = secs.trim().parse().map_err(|_| format!("timeout for `{name}` must be whole seconds"))?;
            if secs == 0 || secs > 86_400 {
                return Err(format!("timeout for `{name}` must be between 1 and 86400 seconds"));
            }
            if out.iter().any(|(q, _)| *q == queue) {
                return Err(format!("queue `{name}` is listed twice"));
            }
            out.push((queue, Duration::from_secs(secs)));
        }
        Ok(Self(out))
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

/// Open a door: send door command `command_id` to its point's controller (queue `door`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenDoor {
    pub command_id: Uuid,
}

/// Sweep expired state as of `at` (unix seconds), queue `sweep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sweep {
    pub at: i64,
}

/// Accrue billing for every hour started by `at` (unix seconds), queue `billing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub at: i64,
}

/// How a job is enqueued beyond its payload.
#[derive(Debug, Clone, Default)]
pub struct EnqueueOptions {
    /// Start no earlier than this long after commit.
    pub delay: Option<Duration>,
    /// Jobs with the same key in one queue are one job: a later enqueue is a
    /// no-op for `JOB_KEY_WINDOW_SECS` after the first, whatever became of the
    /// first job's row (the key lives in `job_keys`).
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
    #[error(transparent)]
    Db(#[from] DbError),
    /// A message's template failed before its outbox row was written.
    #[error(transparent)]
    Render(#[from] crate::messaging::templates::RenderError),
}

/// Enqueues `job` on `queue` in the caller's transaction. Inside an HTTP
/// request the job keeps the request's id (`telemetry::with_request_id`), and
/// its runs log it.
pub async fn enqueue<J: Serialize>(conn: &mut PgConnection, queue: Queue, job: &J) -> Result<(), EnqueueError> {
    enqueue_with(conn, queue, job, EnqueueOptions::default()).await.map(|_| ())
}

/// The end of a `WITH` statement that enqueues one job as [`enqueue_with`]
/// does, for a use case writing its own row and that row's job in one round
/// trip (`WITH mine AS (...), ` then this). The key and the job together: the
/// job is written only when its key is new (or it has none); a duplicate
/// inserts nothing and raises no error, so the caller's transaction stays
/// usable. `$1`-`$6` are bound by [`bind_keyed`]; the caller's own parts use
/// `$7` on. A literal, for `concat!`.
macro_rules! enqueue_keyed {
    () => {
        "key AS (
             INSERT INTO job_keys (queue, key) SELECT $1, $4 WHERE $4 IS NOT NULL
             ON CONFLICT DO NOTHING
             RETURNING 1)
         INSERT INTO jobs (queue, payload, max_attempts, idempotency_key, run_at, request_id)
         SELECT $1, $2, $3, $4, now() + make_interval(secs => $5), $6
         WHERE $4 IS NULL OR EXISTS (SELECT 1 FROM key)"
    };
}
pub(crate) use enqueue_keyed;

/// An `INSERT` of many jobs without keys, each on its own queue, as the end
/// of a statement (alone, or after the caller's `WITH mine AS (...)`). `$1`-`$4`
/// are bound by [`bind_many`]; the caller's own parts use `$5` on. A literal,
/// for `concat!`.
macro_rules! enqueue_unkeyed {
    () => {
        "INSERT INTO jobs (queue, payload, max_attempts, request_id)
         SELECT q, p, m, $4 FROM unnest($1::text[], $2::jsonb[], $3::int[]) AS t(q, p, m)"
    };
}
pub(crate) use enqueue_unkeyed;

/// Enqueues `job` with options. A duplicate idempotency key is reported, not an
/// error, and leaves the caller's transaction usable (`ON CONFLICT DO NOTHING`).
pub async fn enqueue_with<J: Serialize>(
    conn: &mut PgConnection,
    queue: Queue,
    job: &J,
    options: EnqueueOptions,
) -> Result<Enqueued, EnqueueError> {
    let query = sqlx::query(concat!("WITH ", enqueue_keyed!()));
    let inserted = bind_keyed(query, queue, job, options)?.execute(conn).await.during("enqueue a job")?.rows_affected();
    crate::telemetry::metrics::job_enqueued(queue, inserted);
    Ok(if inserted == 1 { Enqueued::New } else { Enqueued::Duplicate })
}

/// Binds `$1`-`$6` of [`enqueue_keyed`].
pub(crate) fn bind_keyed<'q, J: Serialize>(
    query: Query<'q, Postgres, PgArguments>,
    queue: Queue,
    job: &J,
    options: EnqueueOptions,
) -> Result<Query<'q, Postgres, PgArguments>, EnqueueError> {
    Ok(query
        .bind(queue.as_str())
        .bind(serde_json::to_value(job)?)
        .bind(queue.max_attempts() as i32)
        .bind(options.idempotency_key)
        .bind(options.delay.map_or(0.0, |d| d.as_secs_f64()))
        .bind(crate::telemetry::current_request_id()))
}

/// Enqueues many jobs of one queue in one statement (one wake-up for all of
/// them), in the caller's transaction.
pub async fn enqueue_many<J: Serialize>(conn: &mut PgConnection, queue: Queue, jobs: &[J]) -> Result<(), EnqueueError> {
    let queued: Vec<(Queue, &J)> = jobs.iter().map(|job| (queue, job)).collect();
    bind_many(sqlx::query(enqueue_unkeyed!()), &queued)?.execute(conn).await.during("enqueue jobs")?;
    count_many(&queued);
    Ok(())
}

/// Binds `$1`-`$4` of [`enqueue_unkeyed`] for `jobs`; [`count_many`] once written.
pub(crate) fn bind_many<'q, J: Serialize>(
    query: Query<'q, Postgres, PgArguments>,
    jobs: &[(Queue, J)],
) -> Result<Query<'q, Postgres, PgArguments>, EnqueueError> {
    let queues: Vec<&str> = jobs.iter().map(|(q, _)| q.as_str()).collect();
    let payloads = jobs.iter().map(|(_, job)| serde_json::to_value(job)).collect::<Result<Vec<_>, _>>()?;
    let attempts: Vec<i32> = jobs.iter().map(|(q, _)| q.max_attempts() as i32).collect();
    Ok(query.bind(queues).bind(payloads).bind(attempts).bind(crate::telemetry::current_request_id()))
}

/// Counts `jobs`, written by [`enqueue_unkeyed`], in the enqueue metrics.
pub(crate) fn count_many<J>(jobs: &[(Queue, J)]) {
    for queue in Queue::ALL {
        let count = jobs.iter().filter(|(q, _)| *q == queue).count() as u64;
        if count > 0 {
            crate::telemetry::metrics::job_enqueued(queue, count);
        }
    }
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

    #[test]
    fn timeouts_override_some_queues_and_keep_the_defaults_of_the_rest() {
        let t: QueueTimeouts = "door=10, billing=600".parse().unwrap();
        assert_eq!(t.get(Queue::Door), Duration::from_secs(10));
        assert_eq!(t.get(Queue::Billing), Duration::from_secs(600));
        assert_eq!(t.get(Queue::Otp), Duration::from_secs(30));
        assert_eq!(t.get(Queue::Notify), Duration::from_secs(60));
        assert!("door=0".parse::<QueueTimeouts>().is_err());
        assert!("door=1,door=2".parse::<QueueTimeouts>().is_err());
        assert!("mail=1".parse::<QueueTimeouts>().is_err());
    }
}
