//! Layers every response passes through: request ids, tracing, timeouts.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};

use crate::error::error_response;

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

/// Unknown routes answer in the error shape too.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}
