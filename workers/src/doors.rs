//! The door worker (queue `door`): sends one door command to its point's
//! controller and records the outcome through the exchange's use cases.
//!
//! Retries: a 5xx, a timeout or a refused connection fails the run and the
//! engine runs it again after its backoff (`JOB_BACKOFF_BASE_MS` doubling to
//! `JOB_BACKOFF_MAX_SECS`, with jitter), for as long as the command's retry
//! window (`DOOR_RETRY_WINDOW_SECS` from its creation) allows another run; then
//! the handler itself marks the command `failed`, so a command never ends with
//! its job silently dead. Every run, a rescued one included, sends the same
//! `Idempotency-Key` (the command id): a controller that already pulsed the door
//! answers again without pulsing, so a crash between the pulse and our record
//! of it costs one request, never a second pulse.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use chrono::{DateTime, Utc};
use lockers_core::audit::{Actor, Party};
use lockers_core::db::During;
use lockers_core::exchange::doors::{self, Outbound};
use lockers_core::exchange::events;
use lockers_core::jobs::backoff::Backoff;
use lockers_core::jobs::{OpenDoor, Queue};

use crate::providers::doors::DoorError;
use crate::{WorkerState, failure};

pub async fn open_door(job: OpenDoor, state: Data<Arc<WorkerState>>, attempt: Attempt) -> Result<(), BoxDynError> {
    let Some(command) = doors::begin_attempt(&state.pool, job.command_id).await.map_err(failure)? else {
        tracing::debug!(command_id = %job.command_id, "door command already final");
        return Ok(());
    };
    let policy = RetryPolicy { window: state.config.door_retry_window, backoff: state.config.job_backoff() };
    if let Some(why) = policy.closed_before_sending(command.created_at, Utc::now()) {
        // Keep what the last attempt ran into: that is what an operator needs to see.
        let mut conn = state.pool.acquire().await.during("connect").map_err(failure)?;
        let last = doors::get(&mut conn, command.command_id).await.map_err(failure)?.and_then(|c| c.last_error);
        drop(conn);
        let why = match last {
            Some(last) => format!("{why}; the last attempt: {last}"),
            None => why,
        };
        return give_up(&state, &command, why).await;
    }
    let driver = &state.providers.doors;
    match driver.open(&command).await {
        Ok(()) => {
            let mut conn = state.pool.acquire().await.during("connect").map_err(failure)?;
            if driver.reports_closed() {
                // The simulated door closes as soon as it opens: the open's
                // acknowledgement and the close share one transaction.
                let by = Actor { party: Party::Controller(command.point_id), ..Actor::default() };
                let (point, id, door) = (command.point_id, command.command_id, command.door_no);
                events::opened_and_closed(&mut conn, &Actor::system(), &by, point, id, door).await.map_err(failure)?;
            } else {
                doors::acknowledged(&mut conn, &Actor::system(), command.command_id).await.map_err(failure)?;
            }
            tracing::info!(command_id = %command.command_id, door_no = command.door_no, "door opened");
            Ok(())
        }
        Err(DoorError::Transient(error)) => {
            // apalis has counted this run: the engine runs the job no more after it.
            let last_run = attempt.current() >= Queue::Door.max_attempts() as usize;
            let attempts = u32::try_from(command.attempts).unwrap_or(u32::MAX);
            match policy.retry_after_transient(command.created_at, Utc::now(), attempts, last_run) {
                Ok(()) => {
                    tracing::warn!(command_id = %command.command_id, attempt = command.attempts, %error,
                        "door command attempt failed; retrying");
                    doors::attempt_failed(&state.pool, command.command_id, &error).await.map_err(failure)?;
                    Err(error.into())
                }
                Err(why) => give_up(&state, &command, format!("{error}; {why}")).await,
            }
        }
        Err(DoorError::Permanent(error)) => give_up(&state, &command, error).await,
    }
}

/// Records the command `failed` (the exchange then does what that means for the
/// item and locker) and ends the job without a retry.
async fn give_up(state: &WorkerState, command: &Outbound, error: String) -> Result<(), BoxDynError> {
    tracing::error!(command_id = %command.command_id, attempts = command.attempts, %error, "door command failed");
    let mut conn = state.pool.acquire().await.during("connect").map_err(failure)?;
    doors::failed(&mut conn, &Actor::system(), command.command_id, &error).await.map_err(failure)?;
    Err(AbortError::new(error).into())
}

/// How long a door command keeps being retried, and how far apart.
#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    /// From the command's creation.
    window: Duration,
    /// The engine's wait between runs (the same settings it uses).
    backoff: Backoff,
}

impl RetryPolicy {
    fn deadline(&self, created_at: DateTime<Utc>) -> DateTime<Utc> {
        created_at + chrono::Duration::from_std(self.window).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Why nothing is sent any more: the window closed before this run (a run
    /// rescued long after its process died, or one that waited out a long backoff).
    /// A door opening long after it was asked for could open in front of no one.
    fn closed_before_sending(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> Option<String> {
        (now >= self.deadline(created_at))
            .then(|| format!("the retry window of {} s closed before this attempt", self.window.as_secs()))
    }

    /// After attempt `attempts` failed for a passing reason: another run, or
    /// why not (the earliest next run would fall past the window, or the
    /// engine has no run left for the job).
    fn retry_after_transient(
        &self,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        attempts: u32,
        last_run: bool,
    ) -> Result<(), String> {
        let earliest = self.backoff.delay(attempts, 0.0);
        let next = now + chrono::Duration::from_std(earliest).unwrap_or(chrono::TimeDelta::MAX);
        if last_run {
            return Err(format!("gave up after {attempts} attempts"));
        }
        if next >= self.deadline(created_at) {
            return Err(format!(
                "gave up after {attempts} attempts: the retry window of {} s closes before the next",
                self.window.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        window: Duration::from_secs(600),
        backoff: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) },
    };

    #[test]
    fn transient_failures_are_retried_until_the_next_run_would_miss_the_window() {
        let created = Utc::now();
        let at = |secs: i64| created + chrono::Duration::seconds(secs);
        assert!(POLICY.retry_after_transient(created, at(0), 1, false).is_ok());
        // The 10th wait is at least 30 s (60 s capped, jitter in the upper half).
        assert!(POLICY.retry_after_transient(created, at(560), 10, false).is_ok());
        let late = POLICY.retry_after_transient(created, at(571), 10, false).unwrap_err();
        assert!(late.contains("retry window of 600 s"), "{late}");
        // The engine's last run ends the command whatever the window says.
        assert!(POLICY.retry_after_transient(created, at(1), 2, true).is_err());
    }

    #[test]
    fn nothing_is_sent_once_the_window_closed() {
        let created = Utc::now();
        assert!(POLICY.closed_before_sending(created, created + chrono::Duration::seconds(599)).is_none());
        let why = POLICY.closed_before_sending(created, created + chrono::Duration::seconds(600)).unwrap();
        assert!(why.contains("closed before this attempt"), "{why}");
    }
}
