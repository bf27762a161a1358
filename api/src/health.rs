//! Liveness and readiness probes, outside `/api/v1`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::ApiContext;
use crate::error::AppJson;

/// How long a readiness check waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<ApiContext> {
    Router::new().route("/health", get(health)).route("/ready", get(ready))
}

/// The process is up and serving.
async fn health() -> AppJson<Value> {
    AppJson(json!({ "status": "ok" }))
}

/// 200 while PostgreSQL answers, 503 otherwise. Redis only backs rate limits,
/// which fall back to the in-process limiter: a Redis that does not answer is
/// reported as `degraded` and keeps the replica in the load balancer (if every
/// replica left at once, nothing would serve at all).
async fn ready(State(ctx): State<ApiContext>) -> (StatusCode, AppJson<Value>) {
    let postgres = tokio::time::timeout(PROBE_TIMEOUT, lockers_core::db::ping(&ctx.db)).await.is_ok_and(|r| r.is_ok());
    let redis = match ctx.redis.clone() {
        None => None,
        Some(mut conn) => Some(
            tokio::time::timeout(PROBE_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
                .await
                .is_ok_and(|r| r.is_ok()),
        ),
    };
    let mut checks = json!({ "postgres": if postgres { "ok" } else { "down" } });
    if let Some(ok) = redis {
        checks["redis"] = json!(if ok { "ok" } else { "degraded" });
    }
    let (status, label) = match (postgres, redis) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        (true, Some(false)) => (StatusCode::OK, "degraded"),
        (true, _) => (StatusCode::OK, "ready"),
    };
    (status, AppJson(json!({ "status": label, "checks": checks })))
}
