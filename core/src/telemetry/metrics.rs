//! Prometheus metrics: one process-wide recorder, the names every part of the
//! system records under, and the scrape (`/metrics` on the intake, and on
//! `METRICS_ADDR` of a worker process).
//!
//! Recording is an atomic add on a handle the recorder keeps (no I/O, no lock
//! on the hot path); only the scrape reads the database, once, for the queue
//! gauges and the points that went silent.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;

use crate::jobs::Queue;

/// Every series name, in one place: the alert rules in `ops/prometheus/` and
/// the README's metrics table use these.
pub mod name {
    pub const HTTP_REQUESTS: &str = "lockers_http_requests_total";
    pub const HTTP_DURATION: &str = "lockers_http_request_duration_seconds";
    pub const JOBS_ENQUEUED: &str = "lockers_jobs_enqueued_total";
    pub const JOBS_STARTED: &str = "lockers_jobs_started_total";
    pub const JOBS_SUCCEEDED: &str = "lockers_jobs_succeeded_total";
    pub const JOBS_FAILED: &str = "lockers_jobs_failed_total";
    pub const JOBS_RETRIED: &str = "lockers_jobs_retried_total";
    pub const JOBS_DEAD: &str = "lockers_jobs_dead_total";
    pub const JOB_START_DELAY: &str = "lockers_job_start_delay_seconds";
    pub const QUEUE_READY: &str = "lockers_queue_ready_jobs";
    pub const QUEUE_SCHEDULED: &str = "lockers_queue_scheduled_jobs";
    pub const QUEUE_RUNNING: &str = "lockers_queue_running_jobs";
    pub const QUEUE_DEAD: &str = "lockers_queue_dead_jobs";
    pub const QUEUE_OLDEST_READY_AGE: &str = "lockers_queue_oldest_ready_age_seconds";
    pub const POINTS_OFFLINE: &str = "lockers_points_offline";
    pub const POINTS: &str = "lockers_points";
    pub const DEPOSITS: &str = "lockers_deposits_total";
    pub const COLLECTIONS: &str = "lockers_collections_total";
    pub const CODES_SENT: &str = "lockers_codes_sent_total";
    pub const NOTIFICATIONS_SENT: &str = "lockers_notifications_sent_total";
    pub const NOTIFICATIONS_FAILED: &str = "lockers_notifications_failed_total";
    pub const DOOR_COMMANDS_OPENED: &str = "lockers_door_commands_opened_total";
    pub const DOOR_FAILURES: &str = "lockers_door_failures_total";
    pub const BILLED_MINOR: &str = "lockers_billed_amount_minor_total";
    pub const PROCESS_RSS: &str = "process_resident_memory_bytes";
    pub const PROCESS_CPU: &str = "process_cpu_seconds_total";
    pub const PROCESS_START: &str = "process_start_time_seconds";
}

/// Latency buckets (seconds): from a fast API answer to a slow door command.
const BUCKETS: [f64; 14] = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (idempotent: tests build many apps in
/// one process). `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new().set_buckets(&BUCKETS).and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => {
                    describe();
                    keep_up(&handle);
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// How often histograms are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Folds recorded histogram samples into their buckets every [`UPKEEP_EVERY`].
/// The recorder keeps every sample until an upkeep, which otherwise runs only
/// at a scrape: a process nobody scrapes (no Prometheus yet, a benchmark) grew
/// by about 20 bytes a request (56 MiB over 2.7 million searches).
fn keep_up(handle: &PrometheusHandle) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let handle = handle.clone();
    runtime.spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(name::HTTP_REQUESTS, "HTTP requests answered, by method, route template and status");
    describe_histogram!(
        name::HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency by method, route template and status"
    );
    describe_counter!(name::JOBS_ENQUEUED, "jobs enqueued (counted when written; a rolled-back enqueue counts too)");
    describe_counter!(name::JOBS_STARTED, "job runs started by this process");
    describe_counter!(name::JOBS_SUCCEEDED, "job runs that succeeded");
    describe_counter!(name::JOBS_FAILED, "job runs that failed (retried or dead)");
    describe_counter!(name::JOBS_RETRIED, "failed job runs scheduled to run again");
    describe_counter!(name::JOBS_DEAD, "jobs given up (out of attempts or failed permanently)");
    describe_histogram!(name::JOB_START_DELAY, Unit::Seconds, "from a job's due time to the start of its run");
    describe_gauge!(name::QUEUE_READY, "jobs due now and not running (at scrape time)");
    describe_gauge!(name::QUEUE_SCHEDULED, "jobs waiting for a later run time: delayed or retrying");
    describe_gauge!(name::QUEUE_RUNNING, "jobs held by a worker process");
    describe_gauge!(name::QUEUE_DEAD, "dead jobs kept for inspection (lockers-admin jobs failed)");
    describe_gauge!(name::QUEUE_OLDEST_READY_AGE, Unit::Seconds, "how long the oldest ready job has been due");
    describe_gauge!(
        name::POINTS_OFFLINE,
        "locker points with a controller URL and no heartbeat in the last 60 seconds (offline)"
    );
    describe_gauge!(name::POINTS, "locker points with a controller URL");
    describe_counter!(name::DEPOSITS, "items stored (the drop-off door closed)");
    describe_counter!(name::COLLECTIONS, "items collected by their receiver or taken back by their sender");
    describe_counter!(name::CODES_SENT, "one-time codes delivered to a provider, by channel");
    describe_counter!(name::NOTIFICATIONS_SENT, "messages accepted by the provider, by channel");
    describe_counter!(name::NOTIFICATIONS_FAILED, "messages given up or refused, by channel");
    describe_counter!(name::DOOR_COMMANDS_OPENED, "door commands a controller acknowledged");
    describe_counter!(name::DOOR_FAILURES, "door commands given up (the locker goes to maintenance)");
    describe_counter!(name::BILLED_MINOR, "amounts charged, in minor units of the currency");
    describe_gauge!(name::PROCESS_RSS, Unit::Bytes, "resident memory of this process");
    describe_gauge!(name::PROCESS_CPU, Unit::Seconds, "user and system CPU time of this process");
}

/// The scrape: refreshes the gauges read at scrape time (queues, points,
/// process) and renders every series as Prometheus text. A database that does
/// not answer leaves the queue gauges at their last values and the rest is
/// still served.
pub async fn render(db: &PgPool) -> String {
    let Some(handle) = install() else { return String::new() };
    refresh_queues(db).await;
    refresh_process();
    handle.run_upkeep();
    handle.render()
}

async fn refresh_queues(db: &PgPool) {
    const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
    match tokio::time::timeout(SCRAPE_TIMEOUT, crate::jobs::admin::stats(db)).await {
        Ok(Ok(stats)) => {
            for s in stats {
                let queue = s.queue.clone();
                metrics::gauge!(name::QUEUE_READY, "queue" => queue.clone()).set(s.ready as f64);
                metrics::gauge!(name::QUEUE_SCHEDULED, "queue" => queue.clone()).set((s.scheduled + s.retrying) as f64);
                metrics::gauge!(name::QUEUE_RUNNING, "queue" => queue.clone()).set(s.running as f64);
                metrics::gauge!(name::QUEUE_DEAD, "queue" => queue.clone()).set(s.dead as f64);
                metrics::gauge!(name::QUEUE_OLDEST_READY_AGE, "queue" => queue)
                    .set(s.oldest_ready_secs.unwrap_or(0.0).max(0.0));
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: counting jobs per queue failed"),
        Err(_) => tracing::warn!("metrics: counting jobs per queue timed out"),
    }
    let points = sqlx::query_as::<_, (i64, i64)>(
        "SELECT count(*),
                count(*) FILTER (WHERE last_heartbeat_at IS NULL
                                   OR last_heartbeat_at < now() - make_interval(secs => $1))
         FROM locker_points WHERE controller_url IS NOT NULL",
    )
    .bind(crate::places::ONLINE_WINDOW_SECS as f64)
    .fetch_one(db);
    match tokio::time::timeout(SCRAPE_TIMEOUT, points).await {
        Ok(Ok((all, offline))) => {
            metrics::gauge!(name::POINTS).set(all as f64);
            metrics::gauge!(name::POINTS_OFFLINE).set(offline as f64);
        }
        Ok(Err(error)) => tracing::warn!(%error, "metrics: counting offline points failed"),
        Err(_) => tracing::warn!("metrics: counting offline points timed out"),
    }
}

/// Resident memory and CPU time from `/proc/self` (Linux; elsewhere left out).
fn refresh_process() {
    if let Some(rss) = read_rss_bytes() {
        metrics::gauge!(name::PROCESS_RSS).set(rss as f64);
    }
    if let Some(cpu) = read_cpu_seconds() {
        // A counter in Prometheus terms, kept as a gauge here: the exporter's
        // counters are whole numbers and CPU time is fractional.
        metrics::gauge!(name::PROCESS_CPU).set(cpu);
    }
}

fn read_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim();
    kb.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// utime + stime, in clock ticks of 100 Hz (the value of `_SC_CLK_TCK` on Linux).
fn read_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its closing ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The media type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Authorization` header value is `Bearer <token>` (compared in constant time).
pub fn bearer_matches(authorization: Option<&str>, token: &crate::config::Secret) -> bool {
    use subtle::ConstantTimeEq;
    authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
}

/// A job of `queue` was written.
pub fn job_enqueued(queue: Queue, count: u64) {
    metrics::counter!(name::JOBS_ENQUEUED, "queue" => queue.as_str()).increment(count);
}

/// Counts `by` on a business counter without labels.
pub fn business(counter: &'static str, by: u64) {
    metrics::counter!(counter).increment(by);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_from_proc() {
        assert!(read_rss_bytes().is_some_and(|b| b > 1024 * 1024), "some resident memory");
        assert!(read_cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
