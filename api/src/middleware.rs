//! Layers every response passes through: request ids, tracing, timeouts, and
//! the per-IP limit on public reads.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderName, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};

use crate::ApiContext;
use crate::error::{ApiError, error_response};
use crate::extract::ClientIp;
use lockers_core::rate_limit::{Decision, Limit};
use lockers_core::telemetry::metrics::name;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A span per request carrying method, path and request id (never bodies or tokens).
#[derive(Clone, Copy)]
struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> tracing::Span {
        let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
    }
}

/// Request id outermost (so the span and every response carry it, a timeout's
/// too), then tracing, then the per-request timeout.
pub fn apply(router: Router, timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(axum::middleware::from_fn(observe))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(RequestSpan)
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                error_response(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request took too long")
            }))
            .timeout(timeout),
    )
}

/// Counts and times every request by route template (never the raw path, so
/// ids do not multiply the series) and status, and makes the request id the
/// current one while the request is served, so the jobs it enqueues carry it.
/// Cost per request: two atomic updates on handles the recorder caches.
async fn observe(request: axum::extract::Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = method_label(request.method());
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let response = lockers_core::telemetry::with_request_id(id, next.run(request)).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method.to_owned()), ("route", route), ("status", status)];
    metrics::counter!(name::HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(name::HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label; anything unusual is `other`, so a client cannot
/// create series at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Unknown routes answer in the error shape too.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

/// The catalogue anyone may read: places, lockers and their search.
const PUBLIC_READS: [&str; 4] = ["/api/v1/states", "/api/v1/cities", "/api/v1/locker-points", "/api/v1/lockers"];

fn is_public_read(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && PUBLIC_READS
            .iter()
            .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// Public reads per client IP (`PUBLIC_READ_LIMIT_PER_MIN`): generous for
/// people and apps, but one scraper cannot make search slow for everyone.
pub async fn public_read_limit(
    State(ctx): State<ApiContext>,
    ip: ClientIp,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    if is_public_read(request.method(), request.uri().path()) {
        let limit = Limit::per(ctx.config.public_read_limit_per_min, Duration::from_secs(60));
        if let Decision::Limited { retry_after } = ctx.limiter.hit(&format!("read_ip:{}", ip.key()), limit).await {
            let retry_after_secs = retry_after.as_secs_f64().ceil() as u64;
            return ApiError::TooManyRequests { retry_after_secs }.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_reads_are_gets_of_the_catalogue_only() {
        for path in ["/api/v1/states", "/api/v1/cities", "/api/v1/locker-points/x", "/api/v1/lockers/by-place"] {
            assert!(is_public_read(&Method::GET, path), "{path}");
        }
        assert!(!is_public_read(&Method::POST, "/api/v1/states"));
        for path in ["/api/v1/admin/lockers", "/api/v1/auth/me", "/api/v1/lockersx", "/ready"] {
            assert!(!is_public_read(&Method::GET, path), "{path}");
        }
    }
}
