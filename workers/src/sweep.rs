//! The sweep (queue `sweep`): removes state that can no longer be used.

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use lockers_core::jobs::{Queue, Sweep};
use lockers_core::notifications;

use crate::WorkerState;

/// Deletes one-time codes and refresh tokens a day after they stopped being
/// usable; the day keeps recent ones for investigating abuse.
pub async fn sweep(job: Sweep, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let mut tx = state.pool.begin().await?;
    let codes = sqlx::query(
        "DELETE FROM one_time_codes
         WHERE expires_at < to_timestamp($1) - interval '1 day'",
    )
    .bind(job.at as f64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let tokens = sqlx::query(
        "DELETE FROM refresh_tokens
         WHERE expires_at < to_timestamp($1) - interval '1 day'",
    )
    .bind(job.at as f64)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    // Messages whose delivery run died mid-call (`sending` past the lease of
    // their queue) become `unknown`; codes never delivered in time, failed.
    let config = &state.config;
    let lease = [Queue::Otp, Queue::Notify].map(|q| config.job_timeouts.get(q)).into_iter().max().unwrap_or_default();
    let settled = notifications::settle_abandoned(&state.pool, lease + config.job_rescue_after).await?;
    let accounts = sweep_unproven_accounts(&job, &state).await?;
    tracing::info!(codes, tokens, accounts, unknown = settled.unknown, expired = settled.expired, "sweep done");
    Ok(())
}

/// Deletes accounts whose email was never proven within `UNVERIFIED_ACCOUNT_TTL_SECS`,
/// so an address typed by a stranger does not stay taken.
async fn sweep_unproven_accounts(job: &Sweep, state: &WorkerState) -> Result<u64, BoxDynError> {
    let at = chrono::DateTime::from_timestamp(job.at, 0).ok_or("sweep time out of range")?;
    let mut conn = state.pool.acquire().await?;
    Ok(lockers_core::users::delete_unproven(&mut conn, at, state.config.unverified_account_ttl).await?)
}
