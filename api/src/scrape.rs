//! `GET /metrics`: the Prometheus scrape of this process (see
//! `lockers_core::telemetry::metrics`). With METRICS_TOKEN set it asks for that
//! bearer token; without one it is open in development and not served in
//! production, where the intake faces the public.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiContext;
use crate::error::error_response;
use lockers_core::telemetry;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The Prometheus scrape (text exposition format): HTTP, job, queue, business
/// and process series.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String),
    (status = 401, description = "`unauthorized`: METRICS_TOKEN is set and the bearer token is not it", body = crate::error::ErrorBody),
    (status = 404, description = "`not_found`: production without METRICS_TOKEN serves no metrics", body = crate::error::ErrorBody),
))]
async fn metrics(State(ctx): State<ApiContext>, headers: HeaderMap) -> Response {
    match (&ctx.config.metrics_token, ctx.config.is_production()) {
        (Some(token), _) if !telemetry::metrics::bearer_matches(authorization(&headers), token) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "METRICS_TOKEN is required as a bearer token",
            );
        }
        (None, true) => return crate::middleware::not_found().await,
        _ => {}
    }
    let body = telemetry::metrics::render(&ctx.db).await;
    ([(header::CONTENT_TYPE, telemetry::metrics::CONTENT_TYPE)], body).into_response()
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}
