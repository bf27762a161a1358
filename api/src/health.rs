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

/// 200 when PostgreSQL (and Redis, when configured) answer; 503 otherwise.
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
    let ready = postgres && redis.unwrap_or(true);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let label = |ok: bool| if ok { "ok" } else { "down" };
    let mut checks = json!({ "postgres": label(postgres) });
    if let Some(ok) = redis {
        checks["redis"] = json!(label(ok));
    }
    (status, AppJson(json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks })))
}
