//! `GET /metrics`: the Prometheus scrape of this process (see
//! `lockers_core::telemetry::metrics`). With METRICS_TOKEN set it asks for that
//! bearer token; without one it is open in development and not served in
//! production, where the intake faces the public.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ApiContext;
use crate::error::error_response;
use lockers_core::telemetry;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/metrics", get(metrics))
}

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
