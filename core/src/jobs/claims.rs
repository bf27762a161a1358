//! The worker side of the job table: claiming due jobs, acknowledging their
//! outcome in batches, heartbeats, and rescuing jobs of worker processes that
//! died. Every statement works on many jobs at once and only through the
//! primary key or a partial index of a live state.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A job claimed for one worker process, its payload still JSON text.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub payload: String,
    /// Runs so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// A failed run: retried after `retry_in`, or, when `None`, dead.
#[derive(Debug, Clone)]
pub struct Failure {
    pub id: i64,
    pub retry_in: Option<Duration>,
    pub error: String,
}

/// What one claim brought back.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub jobs: Vec<Claimed>,
    /// When the next ready job not yet due becomes due: how long an idle worker
    /// may sleep without starting a delayed job or a retry late.
    pub next_run_at: Option<DateTime<Utc>>,
}

type ClaimRow = (Option<i64>, Option<String>, Option<i32>, Option<i32>, Option<DateTime<Utc>>);

/// Claims up to `limit` due jobs of `queue` for `worker`, oldest first. Rows
/// another claim holds are skipped, so concurrent claims never take one job
/// twice and never wait for each other. The same round trip reports the next
/// future run time (the outer join yields one row even when nothing is due).
pub async fn claim(pool: &PgPool, queue: &str, worker: &str, limit: i64) -> Result<Claim, sqlx::Error> {
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "WITH claimed AS (
             UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $3
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE queue = $1 AND state = 'ready' AND run_at <= now()
                 ORDER BY run_at, id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, payload::text AS payload, attempts, max_attempts)
         SELECT c.id, c.payload, c.attempts, c.max_attempts,
                (SELECT min(run_at) FROM jobs WHERE queue = $1 AND state = 'ready' AND run_at > now())
         FROM (SELECT) AS one LEFT JOIN claimed AS c ON true",
    )
    .bind(queue)
    .bind(limit)
    .bind(worker)
    .fetch_all(pool)
    .await?;
    let next_run_at = rows.first().and_then(|row| row.4);
    let jobs = rows
        .into_iter()
        .filter_map(|(id, payload, attempts, max_attempts, _)| {
            Some(Claimed { id: id?, payload: payload?, attempts: attempts?, max_attempts: max_attempts? })
        })
        .collect();
    Ok(Claim { jobs, next_run_at })
}

/// Promises that a worker polls `queue` for at least `window` from now, so
/// enqueues skip their NOTIFY meanwhile (migrations/0004_job_queue_polling.sql).
/// Returns how long the queue is promised polling by then (another worker may
/// have promised longer).
pub async fn promise_polling(pool: &PgPool, queue: &str, window: Duration) -> Result<Duration, sqlx::Error> {
    let remaining: f64 = sqlx::query_scalar(
        "INSERT INTO job_queue_polls AS p (queue, polled_until)
         VALUES ($1, clock_timestamp() + make_interval(secs => $2))
         ON CONFLICT (queue) DO UPDATE SET polled_until = greatest(p.polled_until, excluded.polled_until)
         RETURNING EXTRACT(EPOCH FROM polled_until - clock_timestamp())::float8",
    )
    .bind(queue)
    .bind(window.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(Duration::try_from_secs_f64(remaining).unwrap_or(Duration::ZERO))
}

/// Records finished jobs: deleted at once when `keep` is false, else marked
/// completed for the retention sweep. Only rows `worker` still holds change, so
/// a late acknowledgement of a rescued job cannot touch its new run.
pub async fn complete(pool: &PgPool, worker: &str, ids: &[i64], keep: bool) -> Result<(), sqlx::Error> {
    let sql = if keep {
        "UPDATE jobs SET state = 'completed', finished_at = now(), locked_by = NULL
         WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'"
    } else {
        "DELETE FROM jobs WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'"
    };
    sqlx::query(sql).bind(ids).bind(worker).execute(pool).await?;
    Ok(())
}

/// Records failed runs: each is either ready again at a future `run_at` (it
/// holds no worker while it waits) or dead.
pub async fn fail(pool: &PgPool, worker: &str, failures: &[Failure]) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = failures.iter().map(|f| f.id).collect();
    // NULL delay: dead.
    let delays: Vec<Option<f64>> = failures.iter().map(|f| f.retry_in.map(|d| d.as_secs_f64())).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
    sqlx::query(
        "UPDATE jobs SET
             state = CASE WHEN f.delay IS NULL THEN 'dead' ELSE 'ready' END,
             run_at = CASE WHEN f.delay IS NULL THEN jobs.run_at ELSE now() + make_interval(secs => f.delay) END,
             finished_at = CASE WHEN f.delay IS NULL THEN now() END,
             last_error = f.error,
             locked_by = NULL
         FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS f(id, delay, error)
         WHERE jobs.id = f.id AND jobs.locked_by = $4 AND jobs.state = 'running'",
    )
    .bind(ids)
    .bind(delays)
    .bind(errors)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands jobs `worker` holds back to ready, due now, and wakes the workers of
/// their queues. `started` says whether the runs began (they then count as
/// attempts); jobs only prefetched get their attempt back.
pub async fn release(pool: &PgPool, worker: &str, ids: &[i64], started: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH released AS (
             UPDATE jobs SET state = 'ready', run_at = now(), locked_by = NULL,
                 attempts = CASE WHEN $3 THEN attempts ELSE attempts - 1 END
             WHERE id = ANY($1) AND locked_by = $2 AND state = 'running'
             RETURNING queue)
         SELECT pg_notify('lockers_jobs', queue) FROM (SELECT DISTINCT queue FROM released) AS q",
    )
    .bind(ids)
    .bind(worker)
    .bind(started)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that `worker` is alive (and registers it on first call).
pub async fn heartbeat(pool: &PgPool, worker: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO job_workers (id, last_seen) VALUES ($1, now())
         ON CONFLICT (id) DO UPDATE SET last_seen = now()",
    )
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

/// A worker process that stops leaves nothing to rescue behind: jobs it still
/// holds (runs cut short by the shutdown timeout) are ready again at once.
pub async fn deregister(pool: &PgPool, worker: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM job_workers WHERE id = $1),
         released AS (
             UPDATE jobs SET state = 'ready', run_at = now(), locked_by = NULL,
                 last_error = 'worker stopped during the run'
             WHERE locked_by = $1 AND state = 'running'
             RETURNING queue)
         SELECT pg_notify('lockers_jobs', queue) FROM (SELECT DISTINCT queue FROM released) AS q",
    )
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

/// Running jobs whose worker process has not been seen for `after` (or is not
/// registered at all) go back to ready, or to dead when out of attempts; the
/// workers of their queues are woken. Returns how many were rescued.
pub async fn rescue(pool: &PgPool, after: Duration) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH lost AS (
             DELETE FROM job_workers WHERE last_seen < now() - make_interval(secs => $1) RETURNING id),
         rescued AS (
             UPDATE jobs SET
                 state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
                 finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
                 run_at = now(),
                 last_error = 'worker ' || locked_by || ' stopped responding while holding the job',
                 locked_by = NULL
             WHERE state = 'running'
               AND (locked_by IN (SELECT id FROM lost)
                    OR NOT EXISTS (SELECT 1 FROM job_workers w WHERE w.id = jobs.locked_by))
             RETURNING queue)
         SELECT coalesce(sum(n), 0)::bigint
         FROM (SELECT count(*) AS n, pg_notify('lockers_jobs', queue) FROM rescued GROUP BY queue) AS q",
    )
    .bind(after.as_secs_f64())
    .fetch_one(pool)
    .await
}

/// Deletes up to `limit` completed jobs older than `retention`; returns how many.
pub async fn purge_completed(pool: &PgPool, retention: Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query(
        "DELETE FROM jobs WHERE id IN (
             SELECT id FROM jobs WHERE state = 'completed' AND finished_at < now() - make_interval(secs => $1)
             ORDER BY finished_at LIMIT $2)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
