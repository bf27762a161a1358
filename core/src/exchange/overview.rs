//! The exchange as staff watch it: items waiting in lockers, door commands
//! that failed, and every item found by state, point and time. One query per
//! figure, each served by a partial index (migrations 0013, 0015 and 0027).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::items::{ItemStatus, Listed, item_columns};
use crate::db::{DbError, During};

/// Items in lockers now: stored (waiting for their receiver) and expired
/// (waiting for their sender to take them back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Waiting {
    pub stored: i64,
    pub expired: i64,
}

/// How many items wait in lockers, by state (`items_billing_open_idx` holds exactly these).
pub async fn items_waiting(conn: &mut PgConnection) -> Result<Waiting, DbError> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'stored') AS stored,
                count(*) FILTER (WHERE status = 'expired') AS expired
         FROM items WHERE status IN ('stored', 'expired')",
    )
    .fetch_one(conn)
    .await
    .during("count items waiting")
}

/// Door commands that failed for good since `since` (retries ran out or the
/// controller refused), read through `door_commands_failed_idx`.
pub async fn failed_door_commands_since(conn: &mut PgConnection, since: DateTime<Utc>) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT count(*) FROM door_commands WHERE status = 'failed' AND failed_at >= $1")
        .bind(since)
        .fetch_one(conn)
        .await
        .during("count failed door commands")
}

/// What the admins' list of items narrows by; `None` does not narrow. Times
/// on when the item was reserved: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub status: Option<ItemStatus>,
    pub point_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

const WHERE: &str = "WHERE ($1::text IS NULL OR i.status = $1) AND ($2::uuid IS NULL OR l.point_id = $2)
    AND ($3::timestamptz IS NULL OR i.created_at >= $3) AND ($4::timestamptz IS NULL OR i.created_at < $4)";

/// One page of the items matching `filter`, newest first (`items_created_idx`),
/// with their places, and how many match.
pub async fn items(
    conn: &mut PgConnection,
    filter: &ItemFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Listed>, i64), DbError> {
    let status = filter.status.map(ItemStatus::as_str);
    let rows: Vec<Listed> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {}, p.name AS point_name, p.address AS point_address
         FROM items i JOIN lockers l ON l.id = i.locker_id JOIN locker_points p ON p.id = l.point_id
         {WHERE} ORDER BY i.created_at DESC, i.id DESC LIMIT $5 OFFSET $6",
        item_columns!()
    )))
    .bind(status)
    .bind(filter.point_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await
    .during("list items for admins")?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM items i JOIN lockers l ON l.id = i.locker_id {WHERE}"
    )))
    .bind(status)
    .bind(filter.point_id)
    .bind(filter.from)
    .bind(filter.to)
    .fetch_one(conn)
    .await
    .during("count items for admins")?;
    Ok((rows, total))
}
