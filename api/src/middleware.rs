//! Layers every response passes through: request ids, tracing, timeouts, the
//! body limit, CORS, security headers, and the per-IP limit on public reads.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, MakeSpan, TraceLayer};

use crate::ApiContext;
use crate::error::{ApiError, error_response};
use crate::extract::ClientIp;
use lockers_core::config::Config;
use lockers_core::net::OriginList;
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
/// too), then tracing, security headers, CORS, the per-request timeout, and
/// the body limit.
pub fn apply(router: Router, config: &Config) -> Router {
    let limit = config.body_limit_bytes;
    let router = router
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(move |request, next| refuse_large_bodies(limit, request, next)));
    let production = config.is_production();
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
            .layer(axum::middleware::from_fn(move |request, next| security_headers(production, request, next)))
            .option_layer(cors(&config.cors_allowed_origins))
            .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                error_response(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request took too long")
            }))
            .timeout(config.request_timeout),
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

/// A known route asked with a method it does not serve (axum adds `Allow`).
pub async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not serve that method; see Allow",
    )
}

/// A declared length over the limit is refused before the body is read; a
/// body without one is cut off by `DefaultBodyLimit` in the extractor (also 413).
async fn refuse_large_bodies(limit: usize, request: axum::extract::Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(request).await
}

/// Pages (Swagger UI, RapiDoc) load scripts, styles and images from this
/// origin only; inline styles are how both render.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                        img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                        base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// JSON answers are never a document to render.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// `nosniff` and a CSP on every answer (the strict one unless it is a page);
/// HSTS in production, where the intake sits behind HTTPS.
async fn security_headers(production: bool, request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let csp = if is_page { PAGE_CSP } else { API_CSP };
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    if production {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// Cross-origin calls from the configured origins only (`CORS_ALLOWED_ORIGINS`);
/// none configured: no CORS headers, so browsers keep to same-origin.
fn cors(origins: &OriginList) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.0.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
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
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    use axum::body::Body;
    use axum::routing::get;
    use clap::Parser;
    use lockers_core::config::AppEnv;
    use tower::ServiceExt;

    #[tokio::test]
    async fn production_answers_carry_hsts_and_development_ones_do_not() {
        for (env, hsts) in [(AppEnv::Production, true), (AppEnv::Development, false)] {
            let mut config = Config::try_parse_from(["lockers"]).expect("defaults parse");
            config.app_env = env;
            let app = apply(Router::new().route("/", get(|| async { "ok" })), &config);
            let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
            assert_eq!(response.headers().contains_key(header::STRICT_TRANSPORT_SECURITY), hsts, "{env:?}");
            assert_eq!(response.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
    }

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
