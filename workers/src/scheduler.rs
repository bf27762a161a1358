//! Periodic work. Each tick only enqueues a job keyed by the tick's time, so
//! when several processes run the scheduler at once the jobs are still one.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data, Monitor, WorkerBuilder};
use apalis_cron::{CronScheduler, Tick};
use lockers_core::config::Config;
use lockers_core::db::During;
use lockers_core::jobs::{self, EnqueueOptions, Queue, Sweep};

use crate::{WorkerState, failure};

pub fn register(monitor: Monitor, config: &Config, state: Arc<WorkerState>, instance: &str) -> Monitor {
    let schedule = config.sweep_cron.0.clone();
    let name = format!("scheduler-sweep-{instance}");
    monitor.register(move |restart| {
        WorkerBuilder::new(format!("{name}-{restart}"))
            .backend(CronScheduler::new(schedule.clone()))
            .data(state.clone())
            .build(schedule_sweep)
    })
}

async fn schedule_sweep(tick: Tick, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let at = tick.get_timestamp() as i64;
    let mut conn = state.pool.acquire().await.during("acquire a connection to schedule the sweep").map_err(failure)?;
    let options = EnqueueOptions { idempotency_key: Some(format!("sweep:{at}")), ..Default::default() };
    let outcome = jobs::enqueue_with(&mut conn, Queue::Sweep, &Sweep { at }, options).await.map_err(failure)?;
    tracing::debug!(at, ?outcome, "sweep scheduled");
    Ok(())
}
