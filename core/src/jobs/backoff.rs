//! When a failed job runs again: exponential backoff with jitter, so a provider
//! that is down is not hammered and retries from many jobs spread out.

use std::time::Duration;

/// Exponential backoff: `base` after the first failure, doubling per attempt,
/// never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait before the next run after `attempt` (1-based) failed. `jitter`
    /// in `[0, 1)` picks a point in the upper half of the step ("equal
    /// jitter"): waits still grow, yet jobs that failed together spread out.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let step = self.base.saturating_mul(1u32 << doublings).min(self.max);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// `delay` with a random jitter.
    pub fn delay_jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }

    /// The wait before the next run when the other side named one
    /// (`Retry-After`): never sooner than `hint` (capped at
    /// [`RETRY_AFTER_CAP`]), spread over up to a fifth more so jobs throttled
    /// together do not come back together, and never sooner than our own
    /// backoff, so a provider answering "again in 0 s" cannot start a storm.
    pub fn delay_after(&self, attempt: u32, hint: Duration, jitter: f64) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        let asked = hint.min(RETRY_AFTER_CAP).mul_f64(1.0 + 0.2 * jitter);
        asked.max(self.delay(attempt, jitter))
    }

    /// `delay_after` with a random jitter.
    pub fn delay_after_jittered(&self, attempt: u32, hint: Duration) -> Duration {
        self.delay_after(attempt, hint, rand::random::<f64>())
    }
}

/// The longest wait a `Retry-After` can impose: a provider asking for an hour
/// (or a date far ahead) is heard as ten minutes.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(60) };

    #[test]
    fn the_wait_doubles_per_attempt_up_to_the_cap() {
        let full: Vec<u64> = (1..=8).map(|a| BACKOFF.delay(a, 1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(BACKOFF.delay(1000, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn a_named_wait_is_honoured_spread_and_capped() {
        let two = Duration::from_secs(2);
        // Attempt 1's own backoff (0.5 to 1 s) is shorter: the hint rules.
        assert_eq!(BACKOFF.delay_after(1, two, 0.0), two);
        assert_eq!(BACKOFF.delay_after(1, two, 1.0), Duration::from_millis(2400));
        for _ in 0..100 {
            let d = BACKOFF.delay_after_jittered(1, two);
            assert!(d >= two && d <= Duration::from_millis(2400), "{d:?}");
        }
        // An hour is heard as ten minutes.
        assert_eq!(BACKOFF.delay_after(1, Duration::from_secs(3600), 0.0), RETRY_AFTER_CAP);
        // "Again at once" still waits our own backoff.
        assert_eq!(BACKOFF.delay_after(4, Duration::ZERO, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn jitter_stays_in_the_upper_half_of_the_step() {
        assert_eq!(BACKOFF.delay(3, 0.0), Duration::from_secs(2));
        for _ in 0..100 {
            let d = BACKOFF.delay_jittered(3);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4), "{d:?}");
        }
    }
}
