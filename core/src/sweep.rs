//! The sweep: the one system use case that removes or closes state nothing
//! can use any more. Each aggregate owns its statements (messaging: expired
//! codes, finished and abandoned notifications; accounts: expired refresh
//! tokens, accounts never proven); [`run`] runs them all. The sweep worker
//! (queue `sweep`, on `SWEEP_CRON`) and `lockers-admin sweep run` both call it.
//!
//! Each statement that finds what to remove or move is served by an index
//! (`migrations/0007_sweep_indexes.sql`, the exchange's partial indexes in
//! `0012`, `0013`, `0016`, `0020`); the integration test
//! `every_sweep_statement_is_served_by_an_index` checks the generic plans of
//! [`INDEXED_STATEMENTS`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use crate::accounts::expiry as accounts;
use crate::audit::{self, Actor, Entry, Party};
use crate::config::Config;
use crate::exchange::collection::{expiry, reminder};
use crate::exchange::{ExchangeError, deposit};
use crate::jobs::Queue;
use crate::messaging::{expiry as messaging, outbox};

/// The statements that find rows by time, with the index each must use.
pub const INDEXED_STATEMENTS: [(&str, &str); 9] = [
    (messaging::EXPIRED_CODES, "one_time_codes_expires_idx"),
    (accounts::EXPIRED_REFRESH_TOKENS, "refresh_tokens_expires_idx"),
    (outbox::FINISHED_NOTIFICATIONS, "notifications_created_idx"),
    (deposit::EXPIRED_RESERVATIONS, "items_reserved_dropoff_idx"),
    (deposit::DOORS_LEFT_OPEN, "items_dropoff_open_idx"),
    (expiry::EXPIRE_STORED, "items_stored_pickup_by_idx"),
    (expiry::ABANDON_EXPIRED, "items_expired_return_by_idx"),
    (reminder::DUE_SQL, "items_reminder_due_idx"),
    (crate::exchange::doors::STUCK_COMMANDS, "door_commands_in_flight_idx"),
];

/// How long state is kept, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSettings {
    /// `NOTIFICATION_RETENTION_SECS`: finished notifications older than this go.
    pub notification_retention: Duration,
    /// `UNVERIFIED_ACCOUNT_TTL_SECS`: accounts never proven older than this go.
    pub unverified_account_ttl: Duration,
    /// A notification claimed (`sending`) longer ago than this lost its
    /// delivery run mid-call: the longest lease of the delivery queues plus
    /// the time before a dead worker's jobs are rescued.
    pub abandoned_claim_after: Duration,
    /// `DOOR_CLOSE_TIMEOUT_SECS`: a drop-off door open longer is reported.
    pub door_close_timeout: Duration,
    /// The exchange's pickup window and return path.
    pub collection: expiry::ExpirySettings,
    /// `PICKUP_REMINDER_AFTER_SECS`: a stored item still waiting this long is reminded once.
    pub pickup_reminder_after: Duration,
    /// A door command still `pending`/`sent` this long after it was issued is
    /// failed: DOOR_RETRY_WINDOW_SECS + the door queue's JOB_TIMEOUT + the
    /// rescue delay + a minute, past any run the worker could still make.
    pub door_stuck_after: Duration,
}

impl SweepSettings {
    pub fn from_config(config: &Config) -> Self {
        let lease = [Queue::Otp, Queue::Notify].map(|q| config.job_timeouts.get(q)).into_iter().max();
        Self {
            notification_retention: config.notification_retention,
            unverified_account_ttl: config.unverified_account_ttl,
            abandoned_claim_after: lease.unwrap_or_default() + config.job_rescue_after,
            door_close_timeout: config.door_close_timeout,
            collection: expiry::ExpirySettings::from_config(config),
            pickup_reminder_after: config.pickup_reminder_after,
            door_stuck_after: config.door_retry_window
                + config.job_timeouts.get(Queue::Door)
                + config.job_rescue_after
                + Duration::from_secs(60),
        }
    }
}

/// What one sweep removed or closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub codes: u64,
    pub tokens: u64,
    pub accounts: u64,
    pub notifications: u64,
    /// Notifications whose delivery run died mid-call, now `unknown`.
    pub unknown: u64,
    /// Code messages never delivered within the code's validity, now `failed`.
    pub expired: u64,
    /// Reservations past their drop-off deadline, now cancelled.
    pub reservations_expired: u64,
    /// Drop-off doors found left open (locker to maintenance, admins alerted).
    pub doors_left_open: u64,
    /// Stored items past their pickup window, now `expired`.
    pub expired_items: u64,
    /// Receivers reminded of an item still waiting.
    pub reminders: u64,
    /// Expired items past their return deadline, now abandoned (billing closed, staff alerted).
    pub abandoned_items: u64,
    /// Door commands left in flight past any retry, now `failed`.
    pub stuck_doors_failed: u64,
}

/// Sweeps state as of `at`. Every statement is idempotent and stands alone,
/// so each commits by itself (short locks; a failure leaves the earlier ones
/// done and the next sweep finishes the rest). A sweep the operator runs by
/// hand is audited (`sweep.run`, with what it removed); the scheduled one,
/// every minute by default, is not: it would bury the audit log.
pub async fn run(
    conn: &mut PgConnection,
    by: &Actor,
    at: DateTime<Utc>,
    settings: &SweepSettings,
) -> Result<SweepReport, ExchangeError> {
    if by.party != Party::Operator {
        return sweep(conn, at, settings).await;
    }
    audit::audited(conn, by, async |tx| {
        let report = sweep(tx, at, settings).await?;
        Ok((report, Entry::change("sweep.run", "sweep", at.to_rfc3339(), None::<&()>, Some(&report))))
    })
    .await
}

async fn sweep(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    settings: &SweepSettings,
) -> Result<SweepReport, ExchangeError> {
    let codes = messaging::delete_expired_codes(conn, at).await?;
    let tokens = accounts::delete_expired_refresh_tokens(conn, at).await?;
    let notifications = outbox::purge_finished(conn, at, settings.notification_retention).await?;
    // Messages whose delivery run died mid-call (`sending` past the lease of
    // their queue) become `unknown`; codes never delivered in time, failed.
    let settled = outbox::settle_abandoned(&mut *conn, settings.abandoned_claim_after).await?;
    let accounts = accounts::delete_unproven_accounts(conn, at, settings.unverified_account_ttl).await?;
    // The exchange's time-driven transitions (use cases, audited as the system).
    let system = Actor::system();
    let reservations_expired = deposit::expire_reservations(conn, &system, at).await?;
    let doors_left_open = deposit::doors_left_open(conn, &system, at, settings.door_close_timeout).await?;
    let (expired_items, abandoned_items) = expiry::sweep(conn, &system, at, &settings.collection).await?;
    let reminders = reminder::remind(conn, at, settings.pickup_reminder_after).await?;
    let stuck_doors_failed = crate::exchange::doors::fail_stuck(conn, &system, at, settings.door_stuck_after).await?;
    Ok(SweepReport {
        codes,
        tokens,
        accounts,
        notifications,
        unknown: settled.unknown,
        expired: settled.expired,
        reservations_expired,
        doors_left_open,
        expired_items,
        reminders,
        abandoned_items,
        stuck_doors_failed,
    })
}
