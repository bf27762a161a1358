//! The ledger read back: settled transactions with the item, locker and
//! point they paid for, for a user's own list and the admins' one.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::Money;
use crate::db::{DbError, During};

/// What to list; `None` does not narrow. Times on `created_at`: `from`
/// inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One settled transaction and what it paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Uuid,
    pub item_id: Uuid,
    pub user_id: Uuid,
    pub amount: Money,
    pub hours: i32,
    pub created_at: DateTime<Utc>,
    pub item_name: String,
    pub locker_id: Uuid,
    pub door_no: i32,
    pub locker_size: String,
    pub point_id: Uuid,
    pub point_name: String,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    item_id: Uuid,
    user_id: Uuid,
    amount_paise: i64,
    currency: String,
    hours: i32,
    created_at: DateTime<Utc>,
    item_name: String,
    locker_id: Uuid,
    door_no: i32,
    locker_size: String,
    point_id: Uuid,
    point_name: String,
}

impl From<Row> for Entry {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            item_id: r.item_id,
            user_id: r.user_id,
            amount: Money::new(r.amount_paise, r.currency),
            hours: r.hours,
            created_at: r.created_at,
            item_name: r.item_name,
            locker_id: r.locker_id,
            door_no: r.door_no,
            locker_size: r.locker_size,
            point_id: r.point_id,
            point_name: r.point_name,
        }
    }
}

// Served by `transactions_user_idx` (user_id, created_at DESC) for a user's
// list and `transactions_created_idx` for the admins'.
// `$4`, a point, narrows through the item's locker (the admin console's filter).
const WHERE: &str = "WHERE ($1::uuid IS NULL OR t.user_id = $1)
    AND ($2::timestamptz IS NULL OR t.created_at >= $2) AND ($3::timestamptz IS NULL OR t.created_at < $3)
    AND ($4::uuid IS NULL OR EXISTS (SELECT 1 FROM items pi JOIN lockers pl ON pl.id = pi.locker_id
                                     WHERE pi.id = t.item_id AND pl.point_id = $4))";

/// One page of the transactions matching `filter`, newest first, and how many match.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Entry>, i64), DbError> {
    list_at(conn, filter, None, limit, offset).await
}

/// [`list`], narrowed to the items of locker point `point_id` when given.
pub async fn list_at(
    conn: &mut PgConnection,
    filter: &Filter,
    point_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Entry>, i64), DbError> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT t.id, t.item_id, t.user_id, t.amount_paise, t.currency::text AS currency, t.hours, t.created_at,
                i.name AS item_name, l.id AS locker_id, l.door_no, l.size AS locker_size,
                p.id AS point_id, p.name AS point_name
         FROM transactions t
         JOIN items i ON i.id = t.item_id
         JOIN lockers l ON l.id = i.locker_id
         JOIN locker_points p ON p.id = l.point_id
         {WHERE} ORDER BY t.created_at DESC, t.id DESC LIMIT $5 OFFSET $6"
    )))
    .bind(filter.user_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(point_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await
    .during("list transactions")?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM transactions t {WHERE}")))
        .bind(filter.user_id)
        .bind(filter.from)
        .bind(filter.to)
        .bind(point_id)
        .fetch_one(conn)
        .await
        .during("count transactions")?;
    Ok((rows.into_iter().map(Entry::from).collect(), total))
}
