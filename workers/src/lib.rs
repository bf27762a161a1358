//! Background work: apalis workers per queue (notifications, doors, billing, sweeps), the
//! providers they talk to, and the cron scheduler.

mod billing;
mod deliver;
mod doors;
pub mod engine;
pub mod providers;
mod scheduler;
pub mod scrape;
pub mod sweep;

use std::sync::Arc;

use anyhow::Context;
use apalis::prelude::{BoxDynError, Monitor, WorkerBuilder, WorkerBuilderExt};
use lockers_core::config::Config;
use lockers_core::jobs::{Billing, DeliverNotification, OpenDoor, Queue, Sweep};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::engine::{Engine, EngineSettings};
use crate::providers::Providers;

/// What every job handler can reach.
pub struct WorkerState {
    pub config: Arc<Config>,
    /// The handlers' own pool (`WORKER_DATABASE_MAX_CONNECTIONS`), apart from
    /// the intake's, so in `--with-workers` neither can exhaust the other.
    pub pool: PgPool,
    pub providers: Providers,
    /// The delivery workers' batched claims and outcomes.
    pub outbox: deliver::OutboxLog,
}

/// A handler's error with its causes spelled out: a `DbError` says only which
/// operation failed, its source why, and the job's `last_error` and the
/// engine's failure log show both ("failed to claim a notification for
/// delivery: pool timed out while waiting for an open connection").
pub(crate) fn failure(error: impl std::error::Error) -> BoxDynError {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text = format!("{text}: {e}");
        cause = e.source();
    }
    text.into()
}

/// Every worker and the scheduler this process is configured to run.
pub struct Runtime {
    config: Arc<Config>,
    pool: PgPool,
    providers: Option<Providers>,
}

impl Runtime {
    pub fn new(config: Arc<Config>, pool: PgPool) -> Self {
        Self { config, pool, providers: None }
    }

    /// Uses these providers instead of the ones the configuration names.
    pub fn with_providers(mut self, providers: Providers) -> Self {
        self.providers = Some(providers);
        self
    }

    /// Runs until `shutdown` is cancelled; then in-flight jobs finish (up to
    /// `SHUTDOWN_TIMEOUT_SECS`) and claimed-but-unstarted jobs are handed back.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Each running handler holds at most one connection at a time and none
        // during a provider call; a pool smaller than the concurrency would make
        // handlers queue for connections, so it is refused before anything starts.
        let pool_size = self.config.worker_pool_size()?;
        let providers = match self.providers {
            Some(p) => p,
            None => Providers::from_config(&self.config)?,
        };
        // The outbox's two writers (batched claims and outcomes) have a connection each.
        let wanted = self.pool.options().get_max_connections().saturating_add(pool_size).saturating_add(2);
        lockers_core::db::warn_if_over_server_limit(&self.pool, wanted, "this process (intake pool and workers)").await;
        let handler_pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect_lazy_with((*self.pool.connect_options()).clone());
        let outbox = deliver::OutboxLog::start(&handler_pool);
        let state =
            Arc::new(WorkerState { config: self.config.clone(), pool: handler_pool.clone(), providers, outbox });
        lockers_core::telemetry::metrics::install();
        let engine = Engine::start(self.pool.clone(), EngineSettings::from_config(&self.config))
            .await
            .context("Failed to register with the job engine")?;
        let instance = Uuid::now_v7().simple().to_string();
        let mut monitor = Monitor::new();
        for &(queue, concurrency) in &self.config.worker_queues.0 {
            let (engine, state, name) = (engine.clone(), state.clone(), format!("{queue}-{instance}"));
            monitor = match queue {
                Queue::Otp | Queue::Notify => monitor.register(move |restart| {
                    WorkerBuilder::new(format!("{name}-{restart}"))
                        .backend(engine.backend::<DeliverNotification>(queue))
                        .data(state.clone())
                        .concurrency(concurrency)
                        .build(deliver::deliver_notification)
                }),
                Queue::Sweep => monitor.register(move |restart| {
                    WorkerBuilder::new(format!("{name}-{restart}"))
                        .backend(engine.backend::<Sweep>(queue))
                        .data(state.clone())
                        .concurrency(concurrency)
                        .build(sweep::sweep)
                }),
                Queue::Door => monitor.register(move |restart| {
                    WorkerBuilder::new(format!("{name}-{restart}"))
                        .backend(engine.backend::<OpenDoor>(queue))
                        .data(state.clone())
                        .concurrency(concurrency)
                        .build(doors::open_door)
                }),
                Queue::Billing => monitor.register(move |restart| {
                    WorkerBuilder::new(format!("{name}-{restart}"))
                        .backend(engine.backend::<Billing>(queue))
                        .data(state.clone())
                        .concurrency(concurrency)
                        .build(billing::accrue)
                }),
            };
            tracing::info!(%queue, concurrency, "worker registered");
        }
        if self.config.scheduler {
            monitor = scheduler::register(monitor, &self.config, state.clone(), &instance);
        }
        let outcome = monitor
            .shutdown_timeout(self.config.shutdown_timeout)
            .run_with_signal(async move {
                shutdown.cancelled().await;
                Ok(())
            })
            .await
            .context("worker monitor failed");
        // Also when the monitor failed: whatever is still held goes back at once.
        engine.stop().await.context("Failed to hand back held jobs")?;
        handler_pool.close().await;
        outcome
    }
}
