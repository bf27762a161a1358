//! The sweep worker (queue `sweep`): runs the sweep use case as of the job's
//! time; what it removes and why is `lockers_core::sweep`.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use lockers_core::audit::Actor;
use lockers_core::db::During;
use lockers_core::jobs::Sweep;
use lockers_core::sweep::{self, SweepSettings};

use crate::{WorkerState, failure};

pub async fn sweep(job: Sweep, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let at = chrono::DateTime::from_timestamp(job.at, 0).ok_or("sweep time out of range")?;
    let mut conn = state.pool.acquire().await.during("acquire a connection for the sweep").map_err(failure)?;
    let settings = SweepSettings::from_config(&state.config);
    let report = sweep::run(&mut conn, &Actor::system(), at, &settings).await.map_err(failure)?;
    tracing::info!(?report, "sweep done");
    Ok(())
}
