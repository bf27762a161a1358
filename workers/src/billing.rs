//! The billing worker (queue `billing`): hourly accrual as of the job's time;
//! what it charges and why is `lockers_core::billing::accrual`.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use lockers_core::audit::Actor;
use lockers_core::billing::{Tariffs, accrual};
use lockers_core::db::During;
use lockers_core::jobs::Billing;

use crate::{WorkerState, failure};

pub async fn accrue(job: Billing, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let at = chrono::DateTime::from_timestamp(job.at, 0).ok_or("billing time out of range")?;
    let mut conn = state.pool.acquire().await.during("acquire a connection for billing").map_err(failure)?;
    let tariffs = Tariffs::from_config(&state.config);
    let report = accrual::run(&mut conn, &Actor::system(), at, &tariffs).await.map_err(failure)?;
    tracing::info!(?report, "billing accrued");
    Ok(())
}
