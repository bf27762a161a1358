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
    redis_skip_until_ms: AtomicU64,
}

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
        Self { redis, prefix: prefix.into(), local: Mutex::new(HashMap::new()), redis_skip_until_ms: AtomicU64::new(0) }
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

    /// Forgets `key` (a successful login clears its failures).
    pub async fn reset(&self, key: &str) {
        if let Some(mut conn) = self.redis() {
            let result: Result<(), _> =
                redis::cmd("DEL").arg(format!("{}rl:{key}", self.prefix)).query_async(&mut conn).await;
            if let Err(e) = result {
                self.redis_failed(&e);
            }
        }
        self.local.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
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
