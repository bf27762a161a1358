//! Hourly accrual: charge lines for the hours open items have started, so
//! the ledger grows as stays do instead of all at once at the close. Accrual
//! is provisional: [`close`](super::close) is the authority, charging what is
//! missing and dropping lines for hours that started after billing ended (an
//! expired item's billing stops at its return deadline, a failed pickup's at
//! the collect), so a late, repeated or concurrent run never changes a bill.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use super::ACCRUAL_LOCK;
use super::tariffs::PriceList;
use crate::audit::{self, Actor, Entry, Party};
use crate::db::{DbError, During};
use crate::places::lockers::Size;

/// The run's one statement ([`CHARGE_SQL`]), with what follows the lines it
/// writes: nothing on the fast path, `ON CONFLICT DO NOTHING` when it meets a
/// line that is there already.
macro_rules! charge_sql {
    ($on_conflict:literal) => {
        concat!(
            "WITH bounds AS (
         SELECT max(run_at) AS high, max(run_at) - interval '5 minutes' AS low
         FROM billing_runs WHERE run_at <= $1
     ),
     prices AS (
         SELECT size, valid_from, lead(valid_from) OVER (PARTITION BY size ORDER BY valid_from) AS valid_to,
                amount_paise, currency
         FROM tariffs
     ),
     span AS MATERIALIZED (
         -- Hour numbers as `started_hours` counts them: whole milliseconds,
         -- rounded up (the interval is whole microseconds: + 0.0001 undoes
         -- the float's rounding below a whole millisecond).
         SELECT i.id, i.stored_at, i.size, b.high,
                CASE WHEN b.low IS NULL THEN
                         coalesce((SELECT round(extract(epoch FROM max(c.hour_start) - i.stored_at) / 3600)::bigint + 1
                                   FROM charges c WHERE c.item_id = i.id), 0)
                     WHEN i.stored_at >= b.low THEN 0
                     ELSE greatest((floor(date_part('epoch', b.low - i.stored_at) * 1000 + 0.0001)::bigint
                                    + 3599999) / 3600000, 1)
                END AS first_n,
                greatest((floor(date_part('epoch', $1 - i.stored_at) * 1000 + 0.0001)::bigint + 3599999) / 3600000, 1)
                    - 1 AS last_n
         FROM items i CROSS JOIN bounds b
         WHERE i.status IN ('stored', 'expired') AND i.stored_at <= $1
           AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.item_id = i.id)
         ORDER BY i.id
     ),
     written AS (
         INSERT INTO charges (item_id, hour_start, amount_paise, currency)
         SELECT s.id, h.hour_start,
                coalesce(p.amount_paise, CASE s.size WHEN 'S' THEN $2 WHEN 'M' THEN $3 WHEN 'L' THEN $4
                                                     WHEN 'XL' THEN $5 ELSE $6 END),
                coalesce(p.currency, $7)
         FROM span s
         CROSS JOIN LATERAL generate_series(s.first_n, s.last_n) AS n
         CROSS JOIN LATERAL (SELECT s.stored_at + n * interval '1 hour' AS hour_start) h
         LEFT JOIN prices p ON p.size = s.size AND p.valid_from <= h.hour_start
                           AND (p.valid_to IS NULL OR h.hour_start < p.valid_to)
         WHERE s.high IS NULL OR h.hour_start > s.high
            OR NOT EXISTS (SELECT 1 FROM charges c WHERE c.item_id = s.id AND c.hour_start = h.hour_start)
         ",
            $on_conflict,
            "
         RETURNING 1
     )
     SELECT (SELECT count(*) FROM span), (SELECT count(*) FROM written)"
        )
    };
}

/// The run's one statement: charges every open item (stored or expired, no
/// transaction) the hours started by `$1` since the watermark, at the price
/// valid when each started; `$2`-`$5` the configured prices of S, M, L, XL,
/// `$6` the default price, `$7` the currency. Returns (open items, lines
/// written).
///
/// The watermark is the latest run at or before `$1` (`billing_runs`), less
/// five minutes: an item's hours are charged from the first one that had not
/// started by then. The margin covers an item whose `stored_at` is before the
/// previous run but whose deposit committed after that run's statement began;
/// an hour in the margin is written only if its line is not there (probed in
/// the primary key), so the insert meets no conflict. That makes it a plain
/// insert: `ON CONFLICT DO NOTHING` costs a speculative insertion per line,
/// almost half the statement (2.6 against 4.5 s of CPU for a million lines). A
/// line there all the same (a run at a later time already went, lines written
/// by hand) fails the statement, which [`accrue`] then repeats with
/// [`CHARGE_OVERLAPPING_SQL`]. With no earlier run (the first after deploy)
/// each item's last charged hour is looked up instead.
///
/// Tariff periods are laid out once per size, not looked up per line; the
/// item's own size prices it (no join with the lockers). Open items are
/// taken in key order and their hours laid out in order, so lines reach the
/// primary key's leaf pages in order without sorting them (written at random,
/// a million lines took 27 s instead of 15 s).
pub const CHARGE_SQL: &str = charge_sql!("");

/// [`CHARGE_SQL`] that skips lines already there.
pub const CHARGE_OVERLAPPING_SQL: &str = charge_sql!("ON CONFLICT (item_id, hour_start) DO NOTHING");

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
/// started: one statement ([`CHARGE_SQL`]) and the run's `billing_runs` row,
/// in one transaction (a savepoint inside a caller's: call it on a plain
/// connection, or the accrual lock lasts until the caller's transaction ends).
///
/// The transaction holds the accrual lock ([`ACCRUAL_LOCK`], exclusive);
/// every [`close`](super::close) takes it shared before it settles. So the
/// statement, which starts after the lock is granted, sees every close that
/// committed before it (that item is skipped), no close commits while it
/// runs (they wait for this transaction, then drop what is past their end),
/// and a second run at the same time waits and then finds nothing left.
pub async fn accrue(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    tariffs: &(impl PriceList + ?Sized),
) -> Result<AccrualReport, DbError> {
    let mut tx = conn.begin().await.during("begin an accrual run")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(ACCRUAL_LOCK)
        .execute(&mut *tx)
        .await
        .during("take the accrual lock")?;
    // The statement sorts a million open items and keeps them for counting:
    // in memory rather than in temporary files. JIT compiling its expressions
    // cost more than it saved (0.9 s of 7 over a million items).
    sqlx::query("SET LOCAL work_mem = '256MB'").execute(&mut *tx).await.during("size the accrual's memory")?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await.during("turn off JIT for the accrual")?;
    // In a savepoint: a line found there already undoes the fast path alone.
    let mut fast = tx.begin().await.during("begin the accrual statement")?;
    let (items, lines) = match charge(&mut fast, CHARGE_SQL, at, tariffs).await {
        Ok(counts) => {
            fast.commit().await.during("release the accrual savepoint")?;
            counts
        }
        Err(error) if error.as_database_error().is_some_and(|e| e.is_unique_violation()) => {
            fast.rollback().await.during("roll back the accrual savepoint")?;
            tracing::info!("accrual met a line already charged; skipping the lines already there");
            charge(&mut tx, CHARGE_OVERLAPPING_SQL, at, tariffs).await.during("accrue charges")?
        }
        Err(error) => return Err(error).during("accrue charges"),
    };
    sqlx::query(
        "INSERT INTO billing_runs (run_at, items, lines) VALUES ($1, $2, $3)
         ON CONFLICT (run_at) DO UPDATE SET lines = billing_runs.lines + excluded.lines,
                                            finished_at = excluded.finished_at",
    )
    .bind(at)
    .bind(items)
    .bind(lines)
    .execute(&mut *tx)
    .await
    .during("record the accrual run")?;
    tx.commit().await.during("commit the accrual run")?;
    Ok(AccrualReport { items: items.unsigned_abs(), lines: lines.unsigned_abs() })
}

/// One accrual statement: (open items, lines written).
async fn charge(
    conn: &mut PgConnection,
    sql: &'static str,
    at: DateTime<Utc>,
    tariffs: &(impl PriceList + ?Sized),
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(sql)
        .bind(at)
        .bind(tariffs.configured(Size::S).minor)
        .bind(tariffs.configured(Size::M).minor)
        .bind(tariffs.configured(Size::L).minor)
        .bind(tariffs.configured(Size::Xl).minor)
        .bind(tariffs.default_price().minor)
        .bind(tariffs.default_price().currency)
        .fetch_one(conn)
        .await
}
