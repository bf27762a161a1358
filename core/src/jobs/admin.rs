//! The operator's view of the job queue (`lockers-admin jobs ...`): depth per
//! queue, dead jobs, and putting a dead job back, which is audited.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};

/// Counts of one queue's jobs by state, for the CLI and metrics. `ready` jobs
/// are due now; `scheduled` and `retrying` wait for their run time (first run,
/// or a retry after a failure).
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct QueueStats {
    pub queue: String,
    pub ready: i64,
    pub scheduled: i64,
    pub running: i64,
    pub retrying: i64,
    pub dead: i64,
    /// Seconds the oldest ready job has waited since it became due.
    pub oldest_ready_secs: Option<f64>,
}

/// Per-queue depth and state counts, every known queue listed (zeros for an
/// empty one, so a dashboard or `jobs stats` never loses a row), then any
/// other queue name found in the table. Completed jobs are not counted: the
/// scan stays on the partial indexes of live states.
pub async fn stats<'e>(db: impl PgExecutor<'e>) -> Result<Vec<QueueStats>, DbError> {
    let known: Vec<&str> = crate::jobs::Queue::ALL.iter().map(|q| q.as_str()).collect();
    sqlx::query_as(
        "WITH live AS (
             SELECT queue,
                    count(*) FILTER (WHERE state = 'ready' AND run_at <= now()) AS ready,
                    count(*) FILTER (WHERE state = 'ready' AND run_at > now() AND attempts = 0) AS scheduled,
                    count(*) FILTER (WHERE state = 'running') AS running,
                    count(*) FILTER (WHERE state = 'ready' AND run_at > now() AND attempts > 0) AS retrying,
                    count(*) FILTER (WHERE state = 'dead') AS dead,
                    EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE state = 'ready' AND run_at <= now()))::float8
                        AS oldest_ready_secs
             FROM jobs WHERE state IN ('ready', 'running', 'dead')
             GROUP BY queue)
         SELECT q.queue, coalesce(l.ready, 0) AS ready, coalesce(l.scheduled, 0) AS scheduled,
                coalesce(l.running, 0) AS running, coalesce(l.retrying, 0) AS retrying,
                coalesce(l.dead, 0) AS dead, l.oldest_ready_secs
         FROM (SELECT DISTINCT queue FROM (SELECT unnest($1::text[]) AS queue UNION SELECT queue FROM live) AS n) AS q
         LEFT JOIN live AS l ON l.queue = q.queue
         ORDER BY array_position($1::text[], q.queue) NULLS LAST, q.queue",
    )
    .bind(known)
    .fetch_all(db)
    .await
    .during("count jobs per queue")
}

/// A job that ran out of attempts or failed permanently.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeadJob {
    pub id: i64,
    pub queue: String,
    pub attempts: i32,
    pub payload: serde_json::Value,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Dead jobs, most recent first.
pub async fn dead<'e>(db: impl PgExecutor<'e>, limit: i64) -> Result<Vec<DeadJob>, DbError> {
    sqlx::query_as(
        "SELECT id, queue, attempts, payload, last_error, finished_at FROM jobs
         WHERE state = 'dead' ORDER BY finished_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
    .during("list dead jobs")
}

/// One page of dead jobs, of one queue or all, most recent first (`jobs_dead`
/// index), and how many there are.
pub async fn dead_page(
    conn: &mut PgConnection,
    queue: Option<crate::jobs::Queue>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DeadJob>, i64), DbError> {
    let queue = queue.map(crate::jobs::Queue::as_str);
    let jobs = sqlx::query_as(
        "SELECT id, queue, attempts, payload, last_error, finished_at FROM jobs
         WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1)
         ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(queue)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await
    .during("list dead jobs")?;
    let total =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'dead' AND ($1::text IS NULL OR queue = $1)")
            .bind(queue)
            .fetch_one(conn)
            .await
            .during("count dead jobs")?;
    Ok((jobs, total))
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No job has this id, or it is not dead (only dead jobs are retried).
    #[error("no dead job with id {0}")]
    NotDead(i64),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The audit trail of a retry: the job as it died, and that it is ready again.
#[derive(Debug, Serialize)]
struct Revived<'a> {
    state: &'a str,
    attempts: i32,
}

/// Puts a dead job back to ready with a fresh set of attempts, audited as
/// `job.retry` by `by` (the operator), and wakes its queue's workers.
pub async fn retry_dead(conn: &mut PgConnection, by: &Actor, id: i64) -> Result<DeadJob, RetryError> {
    audit::audited(conn, by, async |tx| {
        let job: DeadJob = sqlx::query_as(
            "SELECT id, queue, attempts, payload, last_error, finished_at FROM jobs
             WHERE id = $1 AND state = 'dead' FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .during("read a dead job")?
        .ok_or(RetryError::NotDead(id))?;
        // The notification goes out at commit, with the job ready.
        sqlx::query(
            "WITH revived AS (
                 UPDATE jobs SET state = 'ready', attempts = 0, run_at = now(), finished_at = NULL
                 WHERE id = $1 RETURNING queue)
             SELECT pg_notify('lockers_jobs', revived.queue) FROM revived",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .during("put a dead job back in its queue")?;
        let before = Revived { state: "dead", attempts: job.attempts };
        let after = Revived { state: "ready", attempts: 0 };
        Ok((job, Entry::change("job.retry", "job", id, Some(&before), Some(&after))))
    })
    .await
}
