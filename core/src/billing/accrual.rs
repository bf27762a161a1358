//! Hourly accrual: charge lines for the hours open items have started, so
//! the ledger grows as stays do instead of all at once at the close. Accrual
//! is provisional: [`close`](super::close) is the authority, charging what is
//! missing and dropping lines for hours that started after billing ended (an
//! expired item's billing stops at its return deadline, a failed pickup's at
//! the collect), so a late, repeated or concurrent run never changes a bill.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::tariffs::PriceList;
use crate::audit::{self, Actor, Entry, Party};
use crate::db::{DbError, During};
use crate::places::lockers::Size;

/// Items locked and lines written per statement: bounds how long one batch
/// holds its item rows (each batch commits on its own on a plain connection).
const BATCH: i64 = 500;

/// Locks one batch of open items: `$1` the time, `$2` the id after which to
/// start, `$3` the batch size. Items locked by a close right now are skipped.
/// Public for the test that checks an index serves it
/// (`items_billing_open_idx`, migration 0015).
pub const LOCK_SQL: &str = "SELECT i.id FROM items i
     WHERE i.status IN ('stored', 'expired') AND i.stored_at <= $1 AND i.id > $2
       AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.item_id = i.id)
     ORDER BY i.id LIMIT $3
     FOR UPDATE OF i SKIP LOCKED";

/// Charges the locked items (`$2`) their hours started by `$1`; `$3`-`$6` the
/// configured prices of S, M, L, XL, `$7` the default price, `$8` the
/// currency. Its own statement, so its snapshot is taken after the locks: a
/// close that committed before them is seen (its item is skipped), and one
/// that comes later waits for this batch and then drops what is past its end.
const CHARGE_SQL: &str = "WITH span AS (
         -- Hour numbers as `started_hours` counts them: whole milliseconds, rounded up.
         SELECT i.id, i.stored_at, l.size,
                coalesce((SELECT round(extract(epoch FROM max(c.hour_start) - i.stored_at) / 3600)::bigint + 1
                          FROM charges c WHERE c.item_id = i.id), 0) AS first_n,
                greatest((floor(extract(epoch FROM $1 - i.stored_at) * 1000)::bigint + 3599999) / 3600000, 1)
                    - 1 AS last_n
         FROM items i JOIN lockers l ON l.id = i.locker_id
         WHERE i.id = ANY($2) AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.item_id = i.id)
     )
     INSERT INTO charges (id, item_id, hour_start, amount_paise, currency)
     SELECT gen_random_uuid(), s.id, s.stored_at + n * interval '1 hour',
            coalesce(t.amount_paise, CASE s.size WHEN 'S' THEN $3 WHEN 'M' THEN $4 WHEN 'L' THEN $5
                                                 WHEN 'XL' THEN $6 ELSE $7 END),
            coalesce(t.currency, $8)
     FROM span s
     CROSS JOIN LATERAL generate_series(s.first_n, s.last_n) AS n
     LEFT JOIN LATERAL (
         SELECT amount_paise, currency FROM tariffs
         WHERE size = s.size AND valid_from <= s.stored_at + n * interval '1 hour'
         ORDER BY valid_from DESC LIMIT 1) t ON true
     ON CONFLICT (item_id, hour_start) DO NOTHING";

/// What one accrual run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AccrualReport {
    /// Open items looked at (stored or expired, no transaction yet).
    pub items: u64,
    /// Charge lines written (hours started since the last run).
    pub lines: u64,
}

/// The billing run, scheduled on `BILLING_CRON` (queue `billing`) or started
/// by `lockers-admin billing run`: [`accrue`] as of `at`. An operator's run is
/// audited (`billing.run`, with what it charged); the scheduled one, every
/// hour, is not. Safe to repeat and to run twice at once: what one run
/// charged the other skips.
pub async fn run(
    conn: &mut PgConnection,
    by: &Actor,
    at: DateTime<Utc>,
    tariffs: &(impl PriceList + ?Sized),
) -> Result<AccrualReport, DbError> {
    let report = accrue(conn, at, tariffs).await?;
    if by.party == Party::Operator {
        let entry = Entry::change("billing.run", "billing", at.to_rfc3339(), None::<&()>, Some(&report));
        audit::record(conn, by, entry).await?;
    }
    Ok(report)
}

/// Charges, for every item stored or expired and not settled, each hour that
/// has started by `at` and has no line yet, at the price valid when it
/// started. Items being closed at that moment (row locked) are skipped:
/// their close charges them. Each batch is a transaction of its own (a
/// savepoint inside the caller's, whose locks then last until it ends: call
/// it on a plain connection).
pub async fn accrue(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    tariffs: &(impl PriceList + ?Sized),
) -> Result<AccrualReport, DbError> {
    let mut report = AccrualReport::default();
    let mut after = Uuid::nil();
    loop {
        let mut tx = conn.begin().await.during("begin an accrual batch")?;
        let ids: Vec<Uuid> = sqlx::query_scalar(LOCK_SQL)
            .bind(at)
            .bind(after)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await
            .during("lock items to accrue")?;
        let Some(&last) = ids.last() else { return Ok(report) };
        let written = sqlx::query(CHARGE_SQL)
            .bind(at)
            .bind(&ids)
            .bind(tariffs.configured(Size::S).minor)
            .bind(tariffs.configured(Size::M).minor)
            .bind(tariffs.configured(Size::L).minor)
            .bind(tariffs.configured(Size::Xl).minor)
            .bind(tariffs.default_price().minor)
            .bind(tariffs.default_price().currency)
            .execute(&mut *tx)
            .await
            .during("accrue charges")?;
        tx.commit().await.during("commit an accrual batch")?;
        report.items += ids.len() as u64;
        report.lines += written.rows_affected();
        if i64::try_from(ids.len()).unwrap_or(i64::MAX) < BATCH {
            return Ok(report);
        }
        after = last;
    }
}
