//! Our PostgreSQL job engine under apalis: handlers, layers, `Monitor` and
//! apalis-cron stay apalis's; the queue underneath is the `jobs` table
//! (migrations/0003_job_queue.sql) driven by `lockers_workers::engine::claims`.
//!
//! Per process there is one `Engine`: a worker identity kept alive by a
//! heartbeat task of its own, one LISTEN connection fanning out wake-ups, and a
//! maintenance task (rescue of jobs held by dead processes or past their lease,
//! retention of finished jobs and idempotency keys). Per queue and worker there
//! is one `JobBackend` (apalis `Backend`): a fetcher task that claims batches
//! into a prefetch buffer and an acknowledger task that writes outcomes in
//! batches.
//!
//! Fencing: an identity presumed dead (no heartbeat for `rescue_after`) has its
//! jobs rescued and its registration deleted. When the process notices (its
//! heartbeat or a claim finds the registration gone) it cancels the runs it
//! still has under that identity, without acknowledging them, and registers a
//! new identity; jobs it prefetched fail their start check and never run.

mod backend;
pub mod claims;
mod wakeups;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use futures::future::BoxFuture;
use lockers_core::config::Config;
use lockers_core::db::DbError;
use lockers_core::jobs::backoff::Backoff;
use lockers_core::jobs::{Queue, QueueTimeouts};
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use backend::{AckLayer, JobBackend, JobBackendError, RunLost, RunPanicked, RunTimedOut};
use wakeups::{Wakeups, pause};

/// Connections of the engine's own pool (fetchers, acknowledgers, maintenance);
/// opened on demand, so an idle process holds few.
const ENGINE_CONNECTIONS: u32 = 10;

/// How often completed jobs past their retention, and idempotency keys past
/// their window, are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(10);

/// Rows deleted per purge statement, so one purge never holds locks for long.
const PURGE_BATCH: i64 = 10_000;

/// Extra lease beyond a queue's timeout, once the run started: a run cancelled
/// at its timeout still has this long to get its outcome written (writes are
/// retried for up to `rescue_after`) before the rescue pass takes the job back.
fn lease_margin(settings: &EngineSettings) -> Duration {
    settings.rescue_after.max(Duration::from_secs(1))
}

/// The engine's knobs (see `Config` for what each means).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub rescue_after: Duration,
    pub retention: Duration,
    pub poll: Duration,
    pub prefetch: usize,
    pub backoff: Backoff,
    /// How long one run of each queue may take before it is cancelled (a failed attempt).
    pub timeouts: QueueTimeouts,
    /// How long an idempotency key deduplicates.
    pub key_window: Duration,
}

impl EngineSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            rescue_after: config.job_rescue_after,
            retention: config.job_retention,
            poll: config.job_poll,
            prefetch: config.job_prefetch,
            backoff: config.job_backoff(),
            timeouts: config.job_timeouts.clone(),
            key_window: config.job_key_window,
        }
    }

    /// How long a started run of `queue` holds its job: its timeout, plus time
    /// to record the outcome.
    pub fn lease(&self, queue: Queue) -> Duration {
        self.timeouts.get(queue) + lease_margin(self)
    }

    /// Several heartbeats fit in the rescue time, so one slow heartbeat does
    /// not get a live process's jobs taken away.
    fn heartbeat_every(&self) -> Duration {
        (self.rescue_after / 4).max(Duration::from_millis(100))
    }

    /// How long without a heartbeat getting through before this process
    /// cancels its own runs: the rescue time less two heartbeat intervals, so
    /// it stops before any peer can presume it dead and run its jobs again.
    fn fence_after(&self) -> Duration {
        let every = self.heartbeat_every();
        self.rescue_after.saturating_sub(2 * every).max(every)
    }
}

/// A job handler as a closure, for `Engine::serve`.
pub type Handler<Args> = Arc<dyn Fn(Args) -> BoxFuture<'static, Result<(), BoxDynError>> + Send + Sync>;

/// Grace `Engine::serve` gives in-flight runs when told to stop.
const SERVE_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a fence was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fence {
    /// A claim or heartbeat found the registration gone (checked again under
    /// the lock before anything is cancelled).
    Rescued,
    /// No heartbeat got through for most of the rescue time.
    Silent,
}

/// One registration of this process in `job_workers`. Runs claimed under it
/// are cancelled when it is found rescued (`fenced`).
#[derive(Debug)]
pub struct Identity {
    pub id: Arc<str>,
    fenced: CancellationToken,
}

impl Identity {
    fn new() -> Arc<Self> {
        let id = format!("{}-{}", std::process::id(), Uuid::now_v7().simple());
        Arc::new(Self { id: id.into(), fenced: CancellationToken::new() })
    }

    /// True once this identity was found rescued: its runs must stop.
    pub fn is_fenced(&self) -> bool {
        self.fenced.is_cancelled()
    }
}

/// The job engine of one process; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// One connection for heartbeats and registrations alone: a busy engine
    /// pool cannot delay them into a false "presumed dead".
    heartbeat_pool: PgPool,
    identity: RwLock<Arc<Identity>>,
    /// Serialises re-registration when several tasks notice the fence at once.
    renewing: tokio::sync::Mutex<()>,
    settings: EngineSettings,
    wakeups: Wakeups,
    stop: CancellationToken,
}

impl Engine {
    /// Registers this process as a worker and starts its listener, heartbeat
    /// and maintenance tasks. The engine opens its own connections to the
    /// database `pool` points at.
    pub async fn start(pool: PgPool, settings: EngineSettings) -> Result<Engine, DbError> {
        // Claims, acknowledgements and heartbeats commit without waiting for
        // the WAL flush: a write lost in a database crash only means a job runs
        // again (delivery is at least once anyway), while every commit that
        // waits for a flush adds to the latency of the next job. Enqueues stay
        // in the caller's transaction, durable as the caller's data.
        let options = (*pool.connect_options()).clone().options([("synchronous_commit", "off")]);
        let engine_pool = PgPoolOptions::new()
            .max_connections(ENGINE_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options.clone());
        let heartbeat_pool =
            PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(5)).connect_lazy_with(options);
        let identity = Identity::new();
        claims::register(&heartbeat_pool, &identity.id).await?;
        let engine = Engine {
            inner: Arc::new(Inner {
                pool: engine_pool,
                heartbeat_pool,
                identity: RwLock::new(identity),
                renewing: tokio::sync::Mutex::new(()),
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
        tokio::spawn(engine.clone().heartbeat());
        tokio::spawn(engine.clone().maintain());
        Ok(engine)
    }

    /// This process's current worker identity (`jobs.locked_by` of what it claims).
    pub fn worker_id(&self) -> Arc<str> {
        self.identity().id.clone()
    }

    pub fn identity(&self) -> Arc<Identity> {
        match self.inner.identity.read() {
            Ok(identity) => identity.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// An apalis backend for one worker of `queue`.
    pub fn backend<Args>(&self, queue: Queue) -> JobBackend<Args> {
        JobBackend::new(self.clone(), queue)
    }

    /// Works `queue` with `handler` at `concurrency` until `shutdown`: the whole
    /// job path of the engine (claim, start check, lease and timeout, panic
    /// capture, acknowledgement) around any handler. The runtime registers its
    /// handlers with apalis directly; this serves embedding and tests.
    pub async fn serve<Args>(
        &self,
        queue: Queue,
        concurrency: usize,
        handler: Handler<Args>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>
    where
        Args: DeserializeOwned + Send + Sync + Unpin + 'static,
    {
        let engine = self.clone();
        let name = format!("{queue}-{}", Uuid::now_v7().simple());
        Monitor::new()
            .register(move |restart| {
                WorkerBuilder::new(format!("{name}-{restart}"))
                    .backend(engine.backend::<Args>(queue))
                    .data(handler.clone())
                    .concurrency(concurrency)
                    .build(call_handler::<Args>)
            })
            .shutdown_timeout(SERVE_SHUTDOWN_TIMEOUT)
            .run_with_signal(async move {
                shutdown.cancelled().await;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Stops the listener, heartbeat and maintenance, hands back whatever this
    /// process still holds and removes its worker row. Call after the workers stopped.
    pub async fn stop(&self) -> Result<(), DbError> {
        self.inner.stop.cancel();
        let identity = self.identity();
        let deregistered =
            claims::deregister(&self.inner.heartbeat_pool, &identity.id, self.inner.settings.backoff).await;
        self.inner.pool.close().await;
        self.inner.heartbeat_pool.close().await;
        deregistered
    }

    fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn wakeups(&self) -> &Wakeups {
        &self.inner.wakeups
    }

    /// `stale` is no longer this process's: cancel its runs (they are not
    /// acknowledged; their jobs run, or will run, elsewhere) and register a
    /// fresh identity. A no-op when `stale` was already replaced (several tasks
    /// notice at once) and, for `Fence::Rescued`, when the database still has
    /// `stale` registered: a claim that raced a registration must not cancel
    /// healthy runs.
    async fn fence(&self, stale: &Arc<Identity>, why: Fence) {
        let _renewing = self.inner.renewing.lock().await;
        if !Arc::ptr_eq(&self.identity(), stale) || stale.is_fenced() {
            return;
        }
        if why == Fence::Rescued {
            let beat = tokio::time::timeout(self.inner.settings.heartbeat_every(), async {
                claims::heartbeat(&self.inner.heartbeat_pool, &stale.id).await
            });
            match beat.await {
                Ok(Ok(false)) => {}
                // Still registered, or the database cannot tell: nothing to fence
                // (the heartbeat's own timer fences a process cut off for too long).
                Ok(Ok(true)) => return,
                Ok(Err(error)) => {
                    tracing::warn!(%error, cause = %error.source, "checking the worker registration failed");
                    return;
                }
                Err(_) => {
                    tracing::warn!("checking the worker registration timed out");
                    return;
                }
            }
            tracing::warn!(worker = %stale.id, "this process was presumed dead and its jobs rescued; \
                cancelling what it held and registering again");
        } else {
            tracing::warn!(worker = %stale.id, "no heartbeat got through for most of the rescue time; \
                cancelling what this process held before other processes rescue it");
        }
        stale.fenced.cancel();
        // Registered before it is published: a task that reads the new identity
        // always finds it registered (else its claim would call for a fence of
        // a healthy identity). When registering fails the identity is published
        // anyway: it holds nothing, its first claim finds it unregistered and
        // comes back here.
        let fresh = Identity::new();
        let registered = tokio::time::timeout(
            self.inner.settings.heartbeat_every(),
            claims::register(&self.inner.heartbeat_pool, &fresh.id),
        )
        .await;
        match registered {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, cause = %error.source, "registering a new worker identity failed"),
            Err(_) => tracing::warn!("registering a new worker identity timed out"),
        }
        match self.inner.identity.write() {
            Ok(mut identity) => *identity = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Queue::ALL.into_iter().for_each(|queue| self.wakeups().wake(queue));
    }

    /// Keeps the registration alive, on a task and a connection of its own. A
    /// missing registration means the process was presumed dead: fence. Each
    /// heartbeat is bounded by the heartbeat interval (a connection that
    /// silently lost its peer would otherwise hang until TCP gives up), and
    /// a timer independent of the query fences once no heartbeat got through
    /// for the rescue time less two intervals: other processes are about to
    /// take the jobs back, so stop running them here first.
    async fn heartbeat(self) {
        let inner = &self.inner;
        let every = inner.settings.heartbeat_every();
        let give_up = inner.settings.fence_after();
        // When the last heartbeat that got through was sent: the database saw
        // the process alive no earlier than that.
        let mut last_ok = tokio::time::Instant::now();
        loop {
            let deadline = last_ok + give_up;
            let wait = every.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if pause(&inner.stop, wait).await {
                return;
            }
            let identity = self.identity();
            let sent = tokio::time::Instant::now();
            let beat = tokio::time::timeout(every, claims::heartbeat(&inner.heartbeat_pool, &identity.id));
            tokio::select! {
                outcome = beat => match outcome {
                    Ok(Ok(true)) => last_ok = sent,
                    Ok(Ok(false)) => {
                        self.fence(&identity, Fence::Rescued).await;
                        last_ok = tokio::time::Instant::now();
                    }
                    Ok(Err(error)) => tracing::warn!(%error, cause = %error.source, "job worker heartbeat failed"),
                    Err(_) => tracing::warn!(timeout_ms = every.as_millis() as u64, "job worker heartbeat timed out"),
                },
                () = tokio::time::sleep_until(deadline) => {}
            }
            if tokio::time::Instant::now() >= last_ok + give_up {
                self.fence(&self.identity(), Fence::Silent).await;
                last_ok = tokio::time::Instant::now();
            }
        }
    }

    /// Rescue on every tick; purge of old completed jobs and keys now and then.
    async fn maintain(self) {
        let inner = &self.inner;
        let settings = &inner.settings;
        let mut last_purge = tokio::time::Instant::now();
        while !pause(&inner.stop, settings.heartbeat_every()).await {
            match claims::rescue(&inner.pool, settings.rescue_after, settings.backoff).await {
                Ok(0) => {}
                Ok(rescued) => tracing::warn!(rescued, "put back jobs of a silent worker process or past their lease"),
                Err(error) => tracing::warn!(%error, cause = %error.source, "rescue of orphaned jobs failed"),
            }
            if last_purge.elapsed() < PURGE_EVERY {
                continue;
            }
            last_purge = tokio::time::Instant::now();
            let pool = &inner.pool;
            if !settings.retention.is_zero() {
                self.purge("completed jobs", || claims::purge_completed(pool, settings.retention, PURGE_BATCH)).await;
            }
            self.purge("idempotency keys", || claims::purge_keys(pool, settings.key_window, PURGE_BATCH)).await;
        }
    }

    /// Deletes in batches until a batch comes back short.
    async fn purge<F, Fut>(&self, what: &str, mut batch: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<u64, DbError>>,
    {
        loop {
            match batch().await {
                Ok(n) if n as i64 == PURGE_BATCH && !self.inner.stop.is_cancelled() => continue,
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, cause = %error.source, what, "purge failed");
                    return;
                }
            }
        }
    }
}

async fn call_handler<Args>(args: Args, handler: Data<Handler<Args>>) -> Result<(), BoxDynError> {
    handler(args).await
}
