//! Closing an item's bill: its charge lines and its one transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::tariffs::{PriceList, parse_size};
use super::{ACCRUAL_LOCK, Money, started_hours};
use crate::db::{DbError, During};

/// The settled bill of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bill {
    pub item_id: Uuid,
    pub amount: Money,
    pub hours: i32,
}

/// Closes `item_id`'s bill as of `ended_at`, in the caller's transaction:
/// charges every hour started by then that is not charged yet, drops lines
/// accrued for hours that started at or after `ended_at` (billing stopped
/// earlier than accrual knew), and writes the transaction. Closing again
/// returns the bill written the first time, whatever `ended_at` it is given.
///
/// An item never stored costs nothing and gets no transaction: its bill is
/// zero hours in the configured currency.
pub async fn close(
    conn: &mut PgConnection,
    item_id: Uuid,
    ended_at: DateTime<Utc>,
    tariffs: &(impl PriceList + ?Sized),
) -> Result<Bill, DbError> {
    // Before anything else (the caller may hold this item's row already): an
    // accrual run in progress finishes first, and none starts until this
    // transaction ends, so a run never writes a line past this close's end.
    // Then the item's row: racing closes of one item queue on it, so the
    // first writes the lines and the transaction and the rest (reading after
    // it committed, in the next statement) return that bill instead of
    // interleaving their own. One statement: the row is locked only once the
    // join has produced it, so after the accrual lock.
    let item: Option<(Option<DateTime<Utc>>, String)> = sqlx::query_as(
        "SELECT i.stored_at, i.size
         FROM (SELECT pg_advisory_xact_lock_shared($1)) AS accrual, items i
         WHERE i.id = $2 FOR UPDATE OF i",
    )
    .bind(ACCRUAL_LOCK)
    .bind(item_id)
    .fetch_optional(&mut *conn)
    .await
    .during("lock an item to bill")?;
    let Some((stored_at, size)) = item else {
        return Err(DbError { operation: "find an item to bill", source: sqlx::Error::RowNotFound });
    };
    if let Some(bill) = settled(conn, item_id).await? {
        return Ok(bill);
    }
    let Some(stored_at) = stored_at else {
        return Ok(Bill { item_id, amount: Money::zero(tariffs.default_price().currency), hours: 0 });
    };
    // `size` references `locker_sizes`; an unknown code would be a new size
    // this build does not know, priced at the default like any unlisted size.
    let configured = parse_size(&size).map_or_else(|| tariffs.default_price(), |size| tariffs.configured(size));
    let hours = started_hours(stored_at, ended_at);
    // The hour count comes from `started_hours` (integer arithmetic, unit
    // tested), so SQL only lays the hours out and prices each one. Lines
    // accrued for hours at or after the end go in the same statement; they
    // never overlap the hours written (those start before the end).
    sqlx::query(
        "WITH dropped AS (DELETE FROM charges WHERE item_id = $1 AND hour_start >= $2 + $3 * interval '1 hour')
         INSERT INTO charges (item_id, hour_start, amount_paise, currency)
         SELECT $1, h.hour_start, coalesce(t.amount_paise, $5), coalesce(t.currency, $6)
         FROM generate_series(0, $3 - 1) AS n
         CROSS JOIN LATERAL (SELECT $2 + n * interval '1 hour' AS hour_start) h
         LEFT JOIN LATERAL (
             SELECT amount_paise, currency FROM tariffs
             WHERE size = $4 AND valid_from <= h.hour_start
             ORDER BY valid_from DESC LIMIT 1) t ON true
         ORDER BY n
         ON CONFLICT (item_id, hour_start) DO NOTHING",
    )
    .bind(item_id)
    .bind(stored_at)
    .bind(hours)
    .bind(&size)
    .bind(configured.minor)
    .bind(&configured.currency)
    .execute(&mut *conn)
    .await
    .during("charge the started hours")?;
    let written: Option<(i64, String, i32)> = sqlx::query_as(
        "INSERT INTO transactions (id, item_id, user_id, amount_paise, currency, hours)
         SELECT gen_random_uuid(), i.id, i.sender_id, coalesce(sum(c.amount_paise), 0),
                coalesce(min(c.currency), $2), count(c.hour_start)
         FROM items i LEFT JOIN charges c ON c.item_id = i.id
         WHERE i.id = $1
         GROUP BY i.id, i.sender_id
         ON CONFLICT (item_id) DO NOTHING
         RETURNING amount_paise, currency::text, hours",
    )
    .bind(item_id)
    .bind(tariffs.default_price().currency)
    .fetch_optional(&mut *conn)
    .await
    .during("write a transaction")?;
    let Some((minor, currency, hours)) = written else {
        return settled(conn, item_id)
            .await?
            .ok_or(DbError { operation: "read a closed bill", source: sqlx::Error::RowNotFound });
    };
    metrics::counter!(crate::telemetry::metrics::name::BILLED_MINOR, "currency" => currency.clone())
        .increment(u64::try_from(minor).unwrap_or(0));
    Ok(Bill { item_id, amount: Money::new(minor, currency), hours })
}

/// The bill written when `item_id`'s billing closed, if it has.
pub async fn settled(conn: &mut PgConnection, item_id: Uuid) -> Result<Option<Bill>, DbError> {
    let row: Option<(i64, String, i32)> =
        sqlx::query_as("SELECT amount_paise, currency::text, hours FROM transactions WHERE item_id = $1")
            .bind(item_id)
            .fetch_optional(conn)
            .await
            .during("read a transaction")?;
    Ok(row.map(|(minor, currency, hours)| Bill { item_id, amount: Money::new(minor, currency), hours }))
}
