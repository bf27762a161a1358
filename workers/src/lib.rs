//! Background work: apalis workers per queue (notifications, sweeps), the
//! providers they talk to, and the cron scheduler.

mod deliver;
pub mod providers;
mod scheduler;
mod sweep;
mod wakeups;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{BackendExt, Monitor, PollWith, Strategy, WorkerBuilder, WorkerBuilderExt};
use apalis_postgres::PostgresStorage;
use lockers_core::config::Config;
use lockers_core::jobs::{DeliverNotification, Queue, Sweep};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::providers::Providers;

/// Longest a ready job can go unnoticed if its notification were ever missed;
/// also how soon delayed jobs and retries start after their time comes.
const BACKSTOP_POLL: Duration = Duration::from_millis(500);

/// How many jobs a worker claims per fetch.
const FETCH_BATCH: usize = 32;

/// What every job handler can reach.
pub struct WorkerState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    pub providers: Providers,
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
        let providers = match self.providers {
            Some(p) => p,
            None => Providers::from_config(&self.config)?,
        };
        let state = Arc::new(WorkerState { config: self.config.clone(), pool: self.pool.clone(), providers });
        // Worker names must be unique per process: the queue engine treats a
        // restarted process under an old name as still alive.
        let instance = Uuid::now_v7().simple().to_string();
        let mut monitor = Monitor::new();
        for &(queue, concurrency) in &self.config.worker_queues.0 {
            let (pool, state, name) = (self.pool.clone(), state.clone(), format!("{queue}-{instance}"));
            monitor = match queue {
                Queue::Otp | Queue::Notify => monitor.register(move |restart| {
                    WorkerBuilder::new(format!("{name}-{restart}"))
                        .backend(storage::<DeliverNotification>(&pool, queue))
                        .data(state.clone())
                        .concurrency(concurrency)
                        .build(deliver::deliver_notification)
                }),
                Queue::Sweep => monitor.register(move |restart| {
                    WorkerBuilder::new(format!("{name}-{restart}"))
                        .backend(storage::<Sweep>(&pool, queue))
                        .data(state.clone())
                        .concurrency(concurrency)
                        .build(sweep::sweep)
                }),
                Queue::Door | Queue::Billing => {
                    tracing::warn!(%queue, "queue has no handler in this version; not worked");
                    continue;
                }
            };
            tracing::info!(%queue, concurrency, "worker registered");
        }
        if self.config.scheduler {
            monitor = scheduler::register(monitor, &self.config, state.clone(), &instance);
        }
        monitor
            .shutdown_timeout(self.config.shutdown_timeout)
            .run_with_signal(async move {
                shutdown.cancelled().await;
                Ok(())
            })
            .await
            .context("worker monitor failed")
    }
}

/// The queue-engine backend for one queue, with wake-ups that are never lost.
fn storage<J>(pool: &PgPool, queue: Queue) -> PollWith<PostgresStorage<J>, Strategy>
where
    J: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
{
    let config = apalis_postgres::Config::default().queue(queue.as_str()).batch_size(FETCH_BATCH);
    let strategy = Strategy::new()
        .apply(wakeups::DrainedPubsub::new(pool.clone(), queue.as_str()))
        .apply(wakeups::Backstop::new(BACKSTOP_POLL));
    PostgresStorage::<J>::new(pool).with_config(config).poll_with_strategy(strategy)
}
