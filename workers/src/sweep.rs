//! The sweep (queue `sweep`): removes state that can no longer be used.
//! Each statement is served by an index (`migrations/0007_sweep_indexes.sql`);
//! the integration test `every_sweep_statement_is_served_by_an_index` checks
//! the plans of the statements listed in [`INDEXED_STATEMENTS`].

use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use lockers_core::jobs::{Queue, Sweep};
use lockers_core::messaging::outbox;

use crate::WorkerState;

/// One-time codes a day after they expired; the day keeps recent ones for
/// investigating abuse. `$1`: the sweep's time (unix seconds).
pub const EXPIRED_CODES: &str = "DELETE FROM one_time_codes WHERE expires_at < to_timestamp($1) - interval '1 day'";

/// Refresh tokens a day after they expired. `$1`: the sweep's time.
pub const EXPIRED_TOKENS: &str = "DELETE FROM refresh_tokens WHERE expires_at < to_timestamp($1) - interval '1 day'";

/// Notifications that finished (sent, failed, or `unknown` after a run died
/// mid-call) longer than the retention
/// ago; pending ones are never touched, whatever their age. `$1`: the sweep's
/// time, `$2`: `NOTIFICATION_RETENTION_SECS`.
pub const FINISHED_NOTIFICATIONS: &str = "DELETE FROM notifications
     WHERE created_at < to_timestamp($1) - make_interval(secs => $2)
       AND status IN ('sent', 'failed', 'unknown')";

/// The statements above with the index each must use, for the plan test.
pub const INDEXED_STATEMENTS: [(&str, &str); 3] = [
    (EXPIRED_CODES, "one_time_codes_expires_idx"),
    (EXPIRED_TOKENS, "refresh_tokens_expires_idx"),
    (FINISHED_NOTIFICATIONS, "notifications_created_idx"),
];

pub async fn sweep(job: Sweep, state: Data<Arc<WorkerState>>) -> Result<(), BoxDynError> {
    let at = job.at as f64;
    let mut tx = state.pool.begin().await?;
    let codes = sqlx::query(EXPIRED_CODES).bind(at).execute(&mut *tx).await?.rows_affected();
    let tokens = sqlx::query(EXPIRED_TOKENS).bind(at).execute(&mut *tx).await?.rows_affected();
    let retention = state.config.notification_retention.as_secs_f64();
    let notifications =
        sqlx::query(FINISHED_NOTIFICATIONS).bind(at).bind(retention).execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    // Messages whose delivery run died mid-call (`sending` past the lease of
    // their queue) become `unknown`; codes never delivered in time, failed.
    let config = &state.config;
    let lease = [Queue::Otp, Queue::Notify].map(|q| config.job_timeouts.get(q)).into_iter().max().unwrap_or_default();
    let settled = outbox::settle_abandoned(&state.pool, lease + config.job_rescue_after).await?;
    let accounts = sweep_unproven_accounts(&job, &state).await?;
    tracing::info!(
        codes,
        tokens,
        accounts,
        notifications,
        unknown = settled.unknown,
        expired = settled.expired,
        "sweep done"
    );
    Ok(())
}

/// Deletes accounts whose email was never proven within `UNVERIFIED_ACCOUNT_TTL_SECS`,
/// so an address typed by a stranger does not stay taken.
async fn sweep_unproven_accounts(job: &Sweep, state: &WorkerState) -> Result<u64, BoxDynError> {
    let at = chrono::DateTime::from_timestamp(job.at, 0).ok_or("sweep time out of range")?;
    let mut conn = state.pool.acquire().await?;
    Ok(lockers_core::accounts::users::delete_unproven(&mut conn, at, state.config.unverified_account_ttl).await?)
}
