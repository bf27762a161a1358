//! What the sweep removes of messaging besides the outbox: one-time codes
//! past their use.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::db::{DbError, During};

/// One-time codes a day after they expired; the day keeps recent ones for
/// investigating abuse. `$1`: the sweep's time (unix seconds). Served by
/// `one_time_codes_expires_idx`.
pub const EXPIRED_CODES: &str = "DELETE FROM one_time_codes WHERE expires_at < to_timestamp($1) - interval '1 day'";

/// Deletes the codes [`EXPIRED_CODES`] describes, as of `at`.
pub async fn delete_expired_codes(conn: &mut PgConnection, at: DateTime<Utc>) -> Result<u64, DbError> {
    sqlx::query(EXPIRED_CODES)
        .bind(at.timestamp() as f64)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .during("delete expired one-time codes")
}
