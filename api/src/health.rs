//! Liveness and readiness probes, outside `/api/v1`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiContext;
use crate::error::AppJson;

/// How long a readiness check waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
struct Health {
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}))]
struct Readiness {
    /// `ready`, `degraded` (Redis down: in-process limits) or `not_ready`.
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize, ToSchema)]
struct Checks {
    /// `ok` or `down`.
    postgres: &'static str,
    /// `ok` or `degraded`; absent without `REDIS_URL`.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
}

/// The process is up and serving.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
async fn health() -> AppJson<Health> {
    AppJson(Health { status: "ok" })
}

/// 200 while PostgreSQL answers, 503 otherwise. Redis only backs rate limits,
/// which fall back to the in-process limiter: a Redis that does not answer is
/// reported as `degraded` and keeps the replica in the load balancer (if every
/// replica left at once, nothing would serve at all).
#[utoipa::path(get, path = "/ready", tag = "operations", responses(
    (status = 200, description = "Ready (or degraded: Redis down)", body = Readiness),
    (status = 503, description = "PostgreSQL does not answer: status `not_ready`", body = Readiness),
))]
async fn ready(State(ctx): State<ApiContext>) -> (StatusCode, AppJson<Readiness>) {
    let postgres = tokio::time::timeout(PROBE_TIMEOUT, lockers_core::db::ping(&ctx.db)).await.is_ok_and(|r| r.is_ok());
    let redis = match ctx.redis.clone() {
        None => None,
        Some(mut conn) => Some(
            tokio::time::timeout(PROBE_TIMEOUT, redis::cmd("PING").query_async::<String>(&mut conn))
                .await
                .is_ok_and(|r| r.is_ok()),
        ),
    };
    let checks = Checks {
        postgres: if postgres { "ok" } else { "down" },
        redis: redis.map(|ok| if ok { "ok" } else { "degraded" }),
    };
    let (status, label) = match (postgres, redis) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
        (true, Some(false)) => (StatusCode::OK, "degraded"),
        (true, _) => (StatusCode::OK, "ready"),
    };
    (status, AppJson(Readiness { status: label, checks }))
}
