//! The worker side of the job table: claiming due jobs, acknowledging their
//! outcome in batches, heartbeats, and rescuing jobs of worker processes that
//! died. Every statement works on many jobs at once and only through the
//! primary key or a partial index of a live state.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use lockers_core::db::{DbError, During};
use lockers_core::jobs::backoff::Backoff;

/// A job claimed for one worker process, its payload still JSON text.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub payload: String,
    /// Runs so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
    /// The id of the HTTP request that enqueued the job, if one did.
    pub request_id: Option<String>,
    /// Seconds from the job's due time (`run_at`) to this claim.
    pub waited_secs: f64,
}

/// One run of a job as its holder knows it: the worker identity that claimed
/// it and the attempt. Every write about a run names both, so nothing written
/// by a holder that lost the job (rescued, then claimed again, perhaps by the
/// same process under a new identity) can touch the job's later runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    pub worker: Arc<str>,
    pub attempts: i32,
}

/// A failed run: retried after `retry_in`, or, when `None`, dead.
#[derive(Debug, Clone)]
pub struct Failure {
    pub run: Held,
    pub retry_in: Option<Duration>,
    pub error: String,
}

/// What one claim brought back.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub jobs: Vec<Claimed>,
    /// How long until the next ready job not yet due becomes due, by the
    /// database's clock (a host clock ahead of or behind the database's cannot
    /// make an idle worker spin or start a delayed job late).
    pub next_due_in: Option<Duration>,
    /// False when the claiming worker is no longer registered: it was presumed
    /// dead and its jobs rescued. It then claimed nothing and must re-register
    /// under a new identity.
    pub registered: bool,
}

type ClaimRow = (Option<i64>, Option<String>, Option<i32>, Option<i32>, Option<f64>, bool, Option<String>, Option<f64>);

/// Claims up to `limit` due jobs of `queue` for `worker`, oldest first. Rows
/// another claim holds are skipped, so concurrent claims never take one job
/// twice and never wait for each other. A worker whose registration is gone
/// (rescued) claims nothing. The same round trip reports how long until the
/// next future run (the outer join yields one row even when nothing is due).
pub async fn claim(pool: &PgPool, queue: &str, worker: &str, limit: i64) -> Result<Claim, DbError> {
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "WITH me AS (SELECT 1 FROM job_workers WHERE id = $3),
         claimed AS (
             UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = $3, lease_until = NULL,
                            claimed_at = now()
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE queue = $1 AND state = 'ready' AND run_at <= now() AND EXISTS (SELECT 1 FROM me)
                 ORDER BY run_at, id
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, payload::text AS payload, attempts, max_attempts, request_id,
                       EXTRACT(EPOCH FROM now() - run_at)::float8 AS waited)
         SELECT c.id, c.payload, c.attempts, c.max_attempts,
                (SELECT EXTRACT(EPOCH FROM min(run_at) - now())::float8
                 FROM jobs WHERE queue = $1 AND state = 'ready' AND run_at > now()),
                EXISTS (SELECT 1 FROM me), c.request_id, c.waited
         FROM (SELECT) AS one LEFT JOIN claimed AS c ON true
         ORDER BY c.id",
    )
    .bind(queue)
    .bind(limit)
    .bind(worker)
    .fetch_all(pool)
    .await
    .during("claim jobs")?;
    let next_due_in =
        rows.first().and_then(|row| row.4).map(|secs| Duration::try_from_secs_f64(secs).unwrap_or_default());
    let registered = rows.first().is_some_and(|row| row.5);
    let jobs = rows
        .into_iter()
        .filter_map(|(id, payload, attempts, max_attempts, _, _, request_id, waited)| {
            Some(Claimed {
                id: id?,
                payload: payload?,
                attempts: attempts?,
                max_attempts: max_attempts?,
                request_id,
                waited_secs: waited.unwrap_or(0.0).max(0.0),
            })
        })
        .collect();
    Ok(Claim { jobs, next_due_in, registered })
}

/// Right before claimed jobs run, in one statement: each run's lease is set to
/// `lease` from now, and its id answered, only if the run still holds its job
/// (the same worker identity, still registered, and the same attempt, still
/// running, not yet started). A run left out was rescued meanwhile and runs
/// elsewhere, or an identical claim of it (put back unstarted, then claimed
/// again by the same process) started first: it must not start. The runs of
/// one batch may name different worker identities (a process re-registered
/// between their claims).
pub async fn start_many(pool: &PgPool, runs: &[Held], lease: Duration) -> Result<Vec<i64>, DbError> {
    let (ids, keys) = run_keys(runs);
    sqlx::query_scalar(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $3)
         WHERE id = ANY($1) AND state = 'running' AND lease_until IS NULL
           AND (id::text || ':' || attempts::text || ':' || locked_by) = ANY($2)
           AND EXISTS (SELECT 1 FROM job_workers AS w WHERE w.id = jobs.locked_by)
         RETURNING id",
    )
    // Planned for each batch (see `run_keys`).
    .persistent(false)
    .bind(&ids)
    .bind(&keys)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
    .during("start job runs")
}

/// Promises that a worker polls `queue` for at least `window` from now, so
/// enqueues skip their NOTIFY meanwhile (migrations/0004_job_queue_polling.sql).
/// Returns how long the queue is promised polling by then (another worker may
/// have promised longer).
pub async fn promise_polling(pool: &PgPool, queue: &str, window: Duration) -> Result<Duration, DbError> {
    let remaining: f64 = sqlx::query_scalar(
        "INSERT INTO job_queue_polls AS p (queue, polled_until)
         VALUES ($1, clock_timestamp() + make_interval(secs => $2))
         ON CONFLICT (queue) DO UPDATE SET polled_until = greatest(p.polled_until, excluded.polled_until)
         RETURNING EXTRACT(EPOCH FROM polled_until - clock_timestamp())::float8",
    )
    .bind(queue)
    .bind(window.as_secs_f64())
    .fetch_one(pool)
    .await
    .during("promise to poll a queue")?;
    Ok(Duration::try_from_secs_f64(remaining).unwrap_or(Duration::ZERO))
}

fn columns(runs: &[Held]) -> (Vec<i64>, Vec<&str>, Vec<i32>) {
    (
        runs.iter().map(|r| r.id).collect(),
        runs.iter().map(|r| &*r.worker).collect(),
        runs.iter().map(|r| r.attempts).collect(),
    )
}

/// Records finished runs: deleted at once when `keep` is false, else marked
/// completed for the retention sweep. Only runs still held change (see `Held`).
pub async fn complete(pool: &PgPool, runs: &[Held], keep: bool) -> Result<(), DbError> {
    let sql = if keep {
        "UPDATE jobs SET state = 'completed', finished_at = now(), locked_by = NULL, lease_until = NULL
         WHERE id = ANY($1) AND state = 'running'
           AND (id::text || ':' || attempts::text || ':' || locked_by) = ANY($2)"
    } else {
        "DELETE FROM jobs
         WHERE id = ANY($1) AND state = 'running'
           AND (id::text || ':' || attempts::text || ':' || locked_by) = ANY($2)"
    };
    let (ids, keys) = run_keys(runs);
    // Planned for each batch (see `run_keys`).
    let query = sqlx::query(sql).persistent(false);
    query.bind(ids).bind(keys).execute(pool).await.during("record completed jobs")?;
    Ok(())
}

/// The ids of `runs` and a key per run (`id:attempts:worker`), matched with
/// `= ANY`, which PostgreSQL hashes: a batch costs one probe per row read
/// whatever plan the table's statistics lead to (a join against an unnested
/// batch, planned on the statistics of a table that was empty a moment ago,
/// compared every running row with every run of the batch). The statements
/// that use them are not kept prepared: a generic plan made while `jobs` was
/// small scans the whole table, and a pooled connection keeps its plan as the
/// table grows (0.58 ms a batch in the exchange benchmark, where a plan made
/// for the batch at hand reads the primary key).
fn run_keys(runs: &[Held]) -> (Vec<i64>, Vec<String>) {
    let ids = runs.iter().map(|r| r.id).collect();
    let keys = runs.iter().map(|r| format!("{}:{}:{}", r.id, r.attempts, r.worker)).collect();
    (ids, keys)
}

/// Records failed runs: each is either ready again at a future `run_at` (it
/// holds no worker while it waits) or dead.
pub async fn fail(pool: &PgPool, failures: &[Failure]) -> Result<(), DbError> {
    let runs: Vec<Held> = failures.iter().map(|f| f.run.clone()).collect();
    let (ids, workers, attempts) = columns(&runs);
    // NULL delay: dead.
    let delays: Vec<Option<f64>> = failures.iter().map(|f| f.retry_in.map(|d| d.as_secs_f64())).collect();
    let errors: Vec<&str> = failures.iter().map(|f| f.error.as_str()).collect();
    sqlx::query(
        "UPDATE jobs SET
             state = CASE WHEN f.delay IS NULL THEN 'dead' ELSE 'ready' END,
             run_at = CASE WHEN f.delay IS NULL THEN jobs.run_at ELSE now() + make_interval(secs => f.delay) END,
             finished_at = CASE WHEN f.delay IS NULL THEN now() END,
             last_error = f.error,
             locked_by = NULL,
             lease_until = NULL
         FROM unnest($1::bigint[], $2::text[], $3::int[], $4::float8[], $5::text[])
              AS f(id, worker, attempts, delay, error)
         WHERE jobs.id = f.id AND jobs.locked_by = f.worker AND jobs.attempts = f.attempts
           AND jobs.state = 'running'",
    )
    .bind(ids)
    .bind(workers)
    .bind(attempts)
    .bind(delays)
    .bind(errors)
    .execute(pool)
    .await
    .during("record failed job runs")?;
    Ok(())
}

/// The wait before the next run after `attempts` runs, in SQL: the same
/// doubling and "equal jitter" as `Backoff::delay`, given the parameters that
/// hold the base and the cap in seconds.
macro_rules! backoff_sql {
    ($base:literal, $cap:literal) => {
        concat!(
            "make_interval(secs => least(",
            $base,
            " * power(2, least(greatest(attempts - 1, 0), 30)), ",
            $cap,
            ") * (0.5 + random() * 0.5))"
        )
    };
}

/// The SET columns of every hand-back (shutdown, deregistration, rescue): a
/// run that started (`$started`, an SQL condition) counts as an attempt, dead
/// when out of attempts, else ready after its backoff; a job only prefetched
/// gets its attempt back and is ready at once. One rule, so no path lets a
/// poison job cycle through processes without paying attempts.
macro_rules! hand_back_sql {
    ($started:literal, $base:literal, $cap:literal) => {
        concat!(
            "state = CASE WHEN ",
            $started,
            " AND attempts >= max_attempts THEN 'dead' ELSE 'ready' END,
                 finished_at = CASE WHEN ",
            $started,
            " AND attempts >= max_attempts THEN now() END,
                 run_at = CASE WHEN ",
            $started,
            " THEN now() + ",
            backoff_sql!($base, $cap),
            " ELSE now() END,
                 attempts = CASE WHEN ",
            $started,
            " THEN attempts ELSE attempts - 1 END,"
        )
    };
}

/// Hands runs back to ready and wakes the workers of their queues. Runs that
/// `started` count as attempts: out of attempts they are dead, else they wait
/// their backoff, so a job that keeps getting cut short cannot cycle forever.
/// Runs only prefetched get their attempt back and are due at once.
pub async fn release(pool: &PgPool, runs: &[Held], started: bool, backoff: Backoff) -> Result<(), DbError> {
    let (ids, workers, attempts) = columns(runs);
    sqlx::query(concat!(
        "WITH released AS (
             UPDATE jobs SET
                 ",
        hand_back_sql!("$4", "$5", "$6"),
        "
                 last_error = CASE WHEN $4 THEN 'the run was cut short (shutdown)' ELSE last_error END,
                 locked_by = NULL,
                 lease_until = NULL
             FROM unnest($1::bigint[], $2::text[], $3::int[]) AS h(id, worker, attempts_held)
             WHERE jobs.id = h.id AND jobs.locked_by = h.worker AND jobs.attempts = h.attempts_held
               AND jobs.state = 'running'
             RETURNING queue)
         SELECT pg_notify('lockers_jobs', queue) FROM (SELECT DISTINCT queue FROM released) AS q"
    ))
    .bind(ids)
    .bind(workers)
    .bind(attempts)
    .bind(started)
    .bind(backoff.base.as_secs_f64())
    .bind(backoff.max.as_secs_f64())
    .execute(pool)
    .await
    .during("hand back held jobs")?;
    Ok(())
}

/// Registers a new worker identity. Each start, and each return after being
/// presumed dead, registers a fresh one: an identity that was rescued never
/// comes back.
pub async fn register(pool: &PgPool, worker: &str) -> Result<(), DbError> {
    sqlx::query("INSERT INTO job_workers (id, last_seen) VALUES ($1, now())")
        .bind(worker)
        .execute(pool)
        .await
        .during("register a worker")?;
    Ok(())
}

/// Records that `worker` is alive. False when its registration is gone: it
/// was presumed dead and its jobs were rescued (it must stop running them).
pub async fn heartbeat(pool: &PgPool, worker: &str) -> Result<bool, DbError> {
    let seen = sqlx::query("UPDATE job_workers SET last_seen = now() WHERE id = $1")
        .bind(worker)
        .execute(pool)
        .await
        .during("send a worker heartbeat")?
        .rows_affected();
    Ok(seen == 1)
}

/// A worker process that stops leaves nothing to rescue behind: jobs it still
/// holds are handed back at once, runs cut short by the shutdown timeout as
/// attempts (with their backoff, dead when out of attempts), prefetched ones not.
pub async fn deregister(pool: &PgPool, worker: &str, backoff: Backoff) -> Result<(), DbError> {
    sqlx::query(concat!(
        "WITH gone AS (DELETE FROM job_workers WHERE id = $1),
         released AS (
             UPDATE jobs SET
                 ",
        hand_back_sql!("lease_until IS NOT NULL", "$2", "$3"),
        "
                 last_error = CASE WHEN lease_until IS NOT NULL THEN 'worker stopped during the run' ELSE last_error END,
                 locked_by = NULL,
                 lease_until = NULL
             WHERE locked_by = $1 AND state = 'running'
             RETURNING queue)
         SELECT pg_notify('lockers_jobs', queue) FROM (SELECT DISTINCT queue FROM released) AS q"
    ))
    .bind(worker)
    .bind(backoff.base.as_secs_f64())
    .bind(backoff.max.as_secs_f64())
    .execute(pool)
    .await.during("deregister a worker")?;
    Ok(())
}

/// Puts back running jobs that no live holder will finish: those of worker
/// processes not seen for `after` (or not registered at all), those whose
/// lease ran out (the handler hung past its timeout, or its outcome could not
/// be recorded), and those claimed more than `after` ago and never started
/// (the claim's answer was lost on its way to the worker:
/// migrations/0021_unstarted_claims.sql). A started run counts as an attempt: dead when out of them,
/// else ready after its backoff. A job only prefetched gets its attempt back.
/// The workers of their queues are woken. Returns how many were put back.
pub async fn rescue(pool: &PgPool, after: Duration, backoff: Backoff) -> Result<i64, DbError> {
    sqlx::query_scalar(concat!(
        "WITH lost AS (
             DELETE FROM job_workers WHERE last_seen < now() - make_interval(secs => $1) RETURNING id),
         rescued AS (
             UPDATE jobs SET
                 ",
        hand_back_sql!("lease_until IS NOT NULL", "$2", "$3"),
        "
                 last_error = CASE
                     WHEN lease_until IS NULL THEN last_error
                     WHEN lease_until < now() THEN 'the run outlived its lease under worker ' || locked_by
                     ELSE 'worker ' || locked_by || ' stopped responding while holding the job' END,
                 locked_by = NULL,
                 lease_until = NULL
             WHERE state = 'running'
               AND (locked_by IN (SELECT id FROM lost)
                    OR NOT EXISTS (SELECT 1 FROM job_workers w WHERE w.id = jobs.locked_by)
                    OR lease_until < now()
                    OR (lease_until IS NULL AND claimed_at < now() - make_interval(secs => $1)))
             RETURNING queue)
         SELECT coalesce(sum(n), 0)::bigint
         FROM (SELECT count(*) AS n, pg_notify('lockers_jobs', queue) FROM rescued GROUP BY queue) AS q"
    ))
    .bind(after.as_secs_f64())
    .bind(backoff.base.as_secs_f64())
    .bind(backoff.max.as_secs_f64())
    .fetch_one(pool)
    .await
    .during("rescue jobs of dead workers")
}

/// Deletes up to `limit` completed jobs older than `retention`; returns how many.
pub async fn purge_completed(pool: &PgPool, retention: Duration, limit: i64) -> Result<u64, DbError> {
    let deleted = sqlx::query(
        "DELETE FROM jobs WHERE id IN (
             SELECT id FROM jobs WHERE state = 'completed' AND finished_at < now() - make_interval(secs => $1)
             ORDER BY finished_at LIMIT $2)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await
    .during("purge completed jobs")?
    .rows_affected();
    Ok(deleted)
}

/// Deletes up to `limit` idempotency keys older than `window`; returns how many.
/// Until then an enqueue with the same key is a duplicate.
pub async fn purge_keys(pool: &PgPool, window: Duration, limit: i64) -> Result<u64, DbError> {
    let deleted = sqlx::query(
        "DELETE FROM job_keys WHERE (queue, key) IN (
             SELECT queue, key FROM job_keys WHERE created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2)",
    )
    .bind(window.as_secs_f64())
    .bind(limit)
    .execute(pool)
    .await
    .during("purge idempotency keys")?
    .rows_affected();
    Ok(deleted)
}
