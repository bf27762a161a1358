//! Periodic work: the sweep on `SWEEP_CRON`, billing accrual on
//! `BILLING_CRON`. Each tick only enqueues a job keyed by the tick's time, so
//! when several processes run the scheduler at once the jobs are still one.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder};
use apalis_cron::{CronScheduler, Tick};
use lockers_core::config::Config;
use lockers_core::db::During;
use lockers_core::jobs::{self, Billing, EnqueueOptions, Queue, Sweep};

use crate::{WorkerState, failure};

pub fn register(monitor: Monitor, config: &Config, state: Arc<WorkerState>, instance: &str) -> Monitor {
    let sweep = config.sweep_cron.0.clone();
    let billing = config.billing_cron.0.clone();
    let (sweep_name, billing_name) = (format!("scheduler-sweep-{instance}"), format!("scheduler-billing-{instance}"));
    let sweep_state = state.clone();
    monitor
        .register(move |restart| {
            WorkerBuilder::new(format!("{sweep_name}-{restart}"))
                .backend(CronScheduler::new(sweep.clone()))
                .data(sweep_state.clone())
                .build(schedule_sweep)
        })
        .register(move |restart| {
            WorkerBuilder::new(format!("{billing_name}-{restart}"))
                .backend(CronScheduler::new(billing.clone()))
                .data(state.clone())
                .build(schedule_billing)
        })
}

async fn schedule_sweep(tick: Tick, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let at = tick.get_timestamp() as i64;
    schedule(&state, Queue::Sweep, &Sweep { at }, format!("sweep:{at}")).await
}

async fn schedule_billing(tick: Tick, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let at = tick.get_timestamp() as i64;
    schedule(&state, Queue::Billing, &Billing { at }, format!("billing:{at}")).await
}

/// Enqueues the tick's job under its key: the same tick from another
/// scheduler is a duplicate and writes nothing.
async fn schedule<J: serde::Serialize>(
    state: &WorkerState,
    queue: Queue,
    job: &J,
    key: String,
) -> Result<(), BoxDynError> {
    let mut conn = state.pool.acquire().await.during("acquire a connection to schedule a job").map_err(failure)?;
    let options = EnqueueOptions { idempotency_key: Some(key), ..Default::default() };
    let outcome = jobs::enqueue_with(&mut conn, queue, job, options).await.map_err(failure)?;
    tracing::debug!(%queue, ?outcome, "periodic job scheduled");
    Ok(())
}
