//! Rate limits as fixed-window counters. With Redis they are shared between
//! intake replicas and atomic (one Lua script per hit); without Redis, or while
//! Redis fails, an in-process table serves the same rules on this node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

/// How long to skip Redis after it failed, so an outage costs one timeout, not one per request.
const REDIS_BACKOFF: Duration = Duration::from_secs(5);

/// At most `max` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
    /// Restart the window at the hit that reaches `max`, so the block lasts a
    /// whole window from then (lockouts).
    pub block_from_limit: bool,
}

impl Limit {
    pub const fn per(max: u32, window: Duration) -> Self {
        Self { max, window, block_from_limit: false }
    }
}

/// Attempts that are free, then a wait before each next one that doubles from
/// `base` up to `cap`. Attempts are remembered for `memory` after the last one.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub free: u32,
    pub base: Duration,
    pub cap: Duration,
    pub memory: Duration,
}

impl Backoff {
    /// The wait after the `n`th attempt: none while free, then base, 2 base, 4 base... up to cap.
    pub fn wait_after(&self, n: u32) -> Duration {
        if n < self.free {
            return Duration::ZERO;
        }
        let doublings = (n - self.free).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed { count: u32 },
    Limited { retry_after: Duration },
}

/// Counts hits in Redis (when configured and answering) or in process.
pub struct RateLimiter {
    redis: Option<ConnectionManager>,
    prefix: String,
    local: Mutex<HashMap<String, (u32, Instant)>>,
    /// Backoff attempts in process: (count, forgotten at, blocked until).
    local_backoff: Mutex<HashMap<String, (u32, Instant, Instant)>>,
    redis_skip_until_ms: AtomicU64,
}

/// One backoff attempt, atomically (the same rule as [`Backoff::wait_after`]):
/// refused while the wait earned by the previous attempt runs, answering the
/// time left; else counted, starting the wait this attempt earns. KEYS[1]
/// counts attempts, KEYS[2] exists while waiting; ARGV: memory, free, base, cap (ms).
const ATTEMPT_SCRIPT: &str = r"
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then return {-1, wait} end
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local free = tonumber(ARGV[2])
if n >= free then
  local d = math.min(tonumber(ARGV[3]) * 2 ^ (n - free), tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], '1', 'PX', math.floor(d))
end
return {n, 0}
";

/// The whole hit, atomically: count, start the window on the first hit (or
/// restart it on reaching the limit when asked), report the time left.
const HIT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or (ARGV[2] == '1' and n == tonumber(ARGV[3])) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {n, redis.call('PTTL', KEYS[1])}
";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl RateLimiter {
    pub fn new(redis: Option<ConnectionManager>, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            local: Mutex::new(HashMap::new()),
            local_backoff: Mutex::new(HashMap::new()),
            redis_skip_until_ms: AtomicU64::new(0),
        }
    }

    fn redis(&self) -> Option<ConnectionManager> {
        let skip = now_ms() < self.redis_skip_until_ms.load(Ordering::Relaxed);
        if skip { None } else { self.redis.clone() }
    }

    fn redis_failed(&self, error: &redis::RedisError) {
        tracing::warn!(%error, "Redis rate limiter failed; using the in-process limiter");
        self.redis_skip_until_ms.store(now_ms() + REDIS_BACKOFF.as_millis() as u64, Ordering::Relaxed);
    }

    /// Counts one hit on `key`; limited once the count exceeds `limit.max`.
    pub async fn hit(&self, key: &str, limit: Limit) -> Decision {
        let counted = match self.redis() {
            Some(mut conn) => {
                let script = redis::Script::new(HIT_SCRIPT);
                let result: Result<(u32, i64), _> = script
                    .key(format!("{}rl:{key}", self.prefix))
                    .arg(limit.window.as_millis() as u64)
                    .arg(if limit.block_from_limit { "1" } else { "0" })
                    .arg(limit.max)
                    .invoke_async(&mut conn)
                    .await;
                match result {
                    Ok((count, ttl_ms)) => Some((count, Duration::from_millis(ttl_ms.max(1) as u64))),
                    Err(e) => {
                        self.redis_failed(&e);
                        None
                    }
                }
            }
            None => None,
        };
        let (count, left) = counted.unwrap_or_else(|| self.hit_local(key, limit));
        if count > limit.max { Decision::Limited { retry_after: left } } else { Decision::Allowed { count } }
    }

    fn hit_local(&self, key: &str, limit: Limit) -> (u32, Duration) {
        let now = Instant::now();
        let mut table = self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if table.len() > 100_000 {
            table.retain(|_, (_, ends)| *ends > now);
        }
        let entry = table.entry(key.to_owned()).or_insert((0, now + limit.window));
        if entry.1 <= now {
            *entry = (0, now + limit.window);
        }
        entry.0 += 1;
        if limit.block_from_limit && entry.0 == limit.max {
            entry.1 = now + limit.window;
        }
        (entry.0, entry.1.saturating_duration_since(now))
    }

    /// Whether `key` is already over `limit`, without counting a hit.
    pub async fn check(&self, key: &str, limit: Limit) -> Decision {
        if let Some(mut conn) = self.redis() {
            let full = format!("{}rl:{key}", self.prefix);
            let result: Result<(Option<u32>, i64), _> =
                redis::pipe().get(&full).pttl(&full).query_async(&mut conn).await;
            match result {
                Ok((count, ttl_ms)) => return decide(count.unwrap_or(0), ttl_ms, limit),
                Err(e) => self.redis_failed(&e),
            }
        }
        let now = Instant::now();
        let table = self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match table.get(key) {
            Some((count, ends)) if *ends > now => {
                decide(*count, ends.saturating_duration_since(now).as_millis() as i64, limit)
            }
            _ => Decision::Allowed { count: 0 },
        }
    }

    /// Forgets `key`, as a counter and as a backoff (a successful login clears its failures).
    pub async fn reset(&self, key: &str) {
        if let Some(mut conn) = self.redis() {
            let (count, wait) = self.backoff_keys(key);
            let result: Result<(), _> = redis::cmd("DEL")
                .arg(format!("{}rl:{key}", self.prefix))
                .arg(count)
                .arg(wait)
                .query_async(&mut conn)
                .await;
            if let Err(e) = result {
                self.redis_failed(&e);
            }
        }
        self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
        self.local_backoff.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }

    fn backoff_keys(&self, key: &str) -> (String, String) {
        (format!("{}bo:{key}", self.prefix), format!("{}bo_wait:{key}", self.prefix))
    }

    /// One attempt under `backoff`: limited while the wait earned by the
    /// previous attempt runs; otherwise counted (so parallel attempts cannot
    /// slip past) and allowed, starting the wait this attempt earns.
    pub async fn attempt(&self, key: &str, backoff: Backoff) -> Decision {
        if let Some(mut conn) = self.redis() {
            let (count, wait) = self.backoff_keys(key);
            let result: Result<(i64, i64), _> = redis::Script::new(ATTEMPT_SCRIPT)
                .key(count)
                .key(wait)
                .arg(backoff.memory.as_millis() as u64)
                .arg(backoff.free)
                .arg(backoff.base.as_millis() as u64)
                .arg(backoff.cap.as_millis() as u64)
                .invoke_async(&mut conn)
                .await;
            match result {
                Ok((n, _)) if n >= 0 => return Decision::Allowed { count: n as u32 },
                Ok((_, wait_ms)) => {
                    return Decision::Limited { retry_after: Duration::from_millis(wait_ms.max(1) as u64) };
                }
                Err(e) => self.redis_failed(&e),
            }
        }
        let now = Instant::now();
        let mut table = self.local_backoff.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if table.len() > 100_000 {
            table.retain(|_, (_, forgotten, _)| *forgotten > now);
        }
        let entry = table.entry(key.to_owned()).or_insert((0, now, now));
        if entry.2 > now {
            return Decision::Limited { retry_after: entry.2.saturating_duration_since(now) };
        }
        if entry.1 <= now {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = now + backoff.memory;
        entry.2 = now + backoff.wait_after(entry.0);
        Decision::Allowed { count: entry.0 }
    }
}

/// Blocked once the count has reached the maximum (the next hit would exceed it).
fn decide(count: u32, ttl_ms: i64, limit: Limit) -> Decision {
    if count >= limit.max {
        Decision::Limited { retry_after: Duration::from_millis(ttl_ms.max(1) as u64) }
    } else {
        Decision::Allowed { count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_process_limiter_counts_per_key_and_window() {
        let limiter = RateLimiter::new(None, "t:");
        let limit = Limit::per(2, Duration::from_millis(200));
        assert_eq!(limiter.hit("a", limit).await, Decision::Allowed { count: 1 });
        assert_eq!(limiter.hit("a", limit).await, Decision::Allowed { count: 2 });
        assert!(matches!(limiter.hit("a", limit).await, Decision::Limited { .. }));
        assert_eq!(limiter.hit("b", limit).await, Decision::Allowed { count: 1 });
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(limiter.hit("a", limit).await, Decision::Allowed { count: 1 });
    }

    #[test]
    fn backoff_waits_double_after_the_free_attempts_up_to_the_cap() {
        let backoff = Backoff {
            free: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            memory: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=10).map(|n| backoff.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.wait_after(u32::MAX), Duration::from_secs(10));
    }

    #[tokio::test]
    async fn the_in_process_backoff_refuses_during_the_wait_and_reset_forgets() {
        let limiter = RateLimiter::new(None, "t:");
        let backoff = Backoff {
            free: 2,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            memory: Duration::from_secs(60),
        };
        assert_eq!(limiter.attempt("k", backoff).await, Decision::Allowed { count: 1 });
        assert_eq!(limiter.attempt("k", backoff).await, Decision::Allowed { count: 2 });
        assert!(
            matches!(limiter.attempt("k", backoff).await, Decision::Limited { retry_after } if retry_after <= Duration::from_millis(200))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(limiter.attempt("k", backoff).await, Decision::Allowed { count: 3 });
        assert!(
            matches!(limiter.attempt("k", backoff).await, Decision::Limited { retry_after } if retry_after > Duration::from_millis(200))
        );
        limiter.reset("k").await;
        assert_eq!(limiter.attempt("k", backoff).await, Decision::Allowed { count: 1 });
    }

    #[tokio::test]
    async fn check_does_not_count_and_reset_forgets() {
        let limiter = RateLimiter::new(None, "t:");
        let limit = Limit { max: 2, window: Duration::from_secs(60), block_from_limit: true };
        limiter.hit("k", limit).await;
        assert_eq!(limiter.check("k", limit).await, Decision::Allowed { count: 1 });
        limiter.hit("k", limit).await;
        assert!(
            matches!(limiter.check("k", limit).await, Decision::Limited { retry_after } if retry_after > Duration::from_secs(59))
        );
        limiter.reset("k").await;
        assert_eq!(limiter.check("k", limit).await, Decision::Allowed { count: 0 });
    }
}
