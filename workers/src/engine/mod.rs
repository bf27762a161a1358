//! Our PostgreSQL job engine under apalis: handlers, layers, `Monitor` and
//! apalis-cron stay apalis's; the queue underneath is the `jobs` table
//! (migrations/0003_job_queue.sql) driven by `lockers_core::jobs::claims`.
//!
//! Per process there is one `Engine`: a worker id with a heartbeat, one LISTEN
//! connection fanning out wake-ups, and a maintenance loop (heartbeat, rescue
//! of jobs held by dead processes, retention of finished jobs). Per queue and
//! worker there is one `JobBackend` (apalis `Backend`): a fetcher task that
//! claims batches into a prefetch buffer and an acknowledger task that writes
//! outcomes in batches.

mod backend;
mod wakeups;

use std::sync::Arc;
use std::time::Duration;

use lockers_core::config::Config;
use lockers_core::jobs::backoff::Backoff;
use lockers_core::jobs::{Queue, claims};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use backend::{AckLayer, JobBackend, JobBackendError};
use wakeups::{Wakeups, pause};

/// Connections of the engine's own pool (fetchers, acknowledgers, maintenance);
/// opened on demand, so an idle process holds few.
const ENGINE_CONNECTIONS: u32 = 8;

/// How often completed jobs past their retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(10);

/// Rows deleted per purge statement, so one purge never holds locks for long.
const PURGE_BATCH: i64 = 10_000;

/// The engine's knobs (see `Config` for what each means).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub rescue_after: Duration,
    pub retention: Duration,
    pub poll: Duration,
    pub prefetch: usize,
    pub backoff: Backoff,
}

impl EngineSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            rescue_after: config.job_rescue_after,
            retention: config.job_retention,
            poll: config.job_poll,
            prefetch: config.job_prefetch,
            backoff: config.job_backoff(),
        }
    }

    /// Several heartbeats fit in the rescue time, so one slow heartbeat does
    /// not get a live process's jobs taken away.
    fn heartbeat_every(&self) -> Duration {
        (self.rescue_after / 4).max(Duration::from_millis(100))
    }
}

/// The job engine of one process; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    worker_id: String,
    settings: EngineSettings,
    wakeups: Wakeups,
    stop: CancellationToken,
}

impl Engine {
    /// Registers this process as a worker and starts its listener and
    /// maintenance loop. The engine opens its own connections to the database
    /// `pool` points at.
    pub async fn start(pool: PgPool, settings: EngineSettings) -> Result<Engine, sqlx::Error> {
        // Claims, acknowledgements and heartbeats commit without waiting for
        // the WAL flush: a write lost in a database crash only means a job runs
        // again (delivery is at least once anyway), while every commit that
        // waits for a flush adds to the latency of the next job. Enqueues stay
        // in the caller's transaction, durable as the caller's data.
        let options = (*pool.connect_options()).clone().options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(ENGINE_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        let worker_id = format!("{}-{}", std::process::id(), Uuid::now_v7().simple());
        claims::heartbeat(&pool, &worker_id).await?;
        let engine = Engine {
            inner: Arc::new(Inner {
                pool,
                worker_id,
                settings,
                wakeups: Wakeups::new(),
                stop: CancellationToken::new(),
            }),
        };
        let listening = engine.clone();
        tokio::spawn(async move {
            let inner = &listening.inner;
            inner.wakeups.listen(inner.pool.clone(), inner.stop.clone()).await;
        });
        tokio::spawn(engine.clone().maintain());
        Ok(engine)
    }

    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// An apalis backend for one worker of `queue`.
    pub fn backend<Args>(&self, queue: Queue) -> JobBackend<Args> {
        JobBackend::new(self.clone(), queue)
    }

    /// Stops the listener and maintenance, hands back whatever this process
    /// still holds and removes its worker row. Call after the workers stopped.
    pub async fn stop(&self) -> Result<(), sqlx::Error> {
        self.inner.stop.cancel();
        let deregistered = claims::deregister(&self.inner.pool, &self.inner.worker_id).await;
        self.inner.pool.close().await;
        deregistered
    }

    fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn wakeups(&self) -> &Wakeups {
        &self.inner.wakeups
    }

    /// Heartbeat and rescue on every tick; purge of old completed jobs now and then.
    async fn maintain(self) {
        let inner = &self.inner;
        let mut last_purge = tokio::time::Instant::now();
        while !pause(&inner.stop, inner.settings.heartbeat_every()).await {
            if let Err(error) = claims::heartbeat(&inner.pool, &inner.worker_id).await {
                tracing::warn!(%error, "job worker heartbeat failed");
            }
            match claims::rescue(&inner.pool, inner.settings.rescue_after).await {
                Ok(0) => {}
                Ok(rescued) => tracing::warn!(rescued, "rescued jobs held by a worker process that stopped responding"),
                Err(error) => tracing::warn!(%error, "rescue of orphaned jobs failed"),
            }
            if !inner.settings.retention.is_zero() && last_purge.elapsed() >= PURGE_EVERY {
                last_purge = tokio::time::Instant::now();
                loop {
                    match claims::purge_completed(&inner.pool, inner.settings.retention, PURGE_BATCH).await {
                        Ok(n) if n as i64 == PURGE_BATCH && !inner.stop.is_cancelled() => continue,
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(%error, "purge of completed jobs failed");
                            break;
                        }
                    }
                }
            }
        }
    }
}
