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
}

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
    fn jitter_stays_in_the_upper_half_of_the_step() {
        assert_eq!(BACKOFF.delay(3, 0.0), Duration::from_secs(2));
        for _ in 0..100 {
            let d = BACKOFF.delay_jittered(3);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4), "{d:?}");
        }
    }
}
