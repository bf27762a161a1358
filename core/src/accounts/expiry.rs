//! What the sweep removes of accounts: refresh tokens past their use and
//! accounts whose email was never proven.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::db::{DbError, During};

/// Refresh tokens a day after they expired. `$1`: the sweep's time (unix
/// seconds). Served by `refresh_tokens_expires_idx`.
pub const EXPIRED_REFRESH_TOKENS: &str =
    "DELETE FROM refresh_tokens WHERE expires_at < to_timestamp($1) - interval '1 day'";

/// Deletes the tokens [`EXPIRED_REFRESH_TOKENS`] describes, as of `at`.
pub async fn delete_expired_refresh_tokens(conn: &mut PgConnection, at: DateTime<Utc>) -> Result<u64, DbError> {
    sqlx::query(EXPIRED_REFRESH_TOKENS)
        .bind(at.timestamp() as f64)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .during("delete expired refresh tokens")
}

/// Deletes accounts whose email was never proven within `ttl`
/// (`UNVERIFIED_ACCOUNT_TTL_SECS`) of `at`, so an address typed by a stranger
/// does not stay taken. Accounts with exchanges or bills on record are kept
/// (those rows reference them), though an unproven account cannot make one.
pub async fn delete_unproven_accounts(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    ttl: std::time::Duration,
) -> Result<u64, DbError> {
    sqlx::query(
        "DELETE FROM users u
         WHERE email_verified_at IS NULL AND created_at < $1 - make_interval(secs => $2)
           AND NOT EXISTS (SELECT 1 FROM items i WHERE i.sender_id = u.id)
           AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.user_id = u.id)",
    )
    .bind(at)
    .bind(ttl.as_secs_f64())
    .execute(conn)
    .await
    .map(|r| r.rows_affected())
    .during("delete accounts never proven")
}
