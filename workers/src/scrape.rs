//! A worker process's own `/metrics` on METRICS_ADDR (the intake serves its
//! own on LISTEN_ADDR). Same series, same token rule: with METRICS_TOKEN set
//! the scrape must bear it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lockers_core::config::Secret;
use lockers_core::telemetry::metrics;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Scrape {
    pool: PgPool,
    token: Option<Secret>,
}

/// Binds `addr` and serves `/metrics` until `shutdown`. Returns the bound
/// address (port 0 picks one) once listening.
pub async fn serve(
    addr: SocketAddr,
    pool: PgPool,
    token: Option<Secret>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    metrics::install();
    let listener = TcpListener::bind(addr).await.with_context(|| format!("Failed to bind METRICS_ADDR {addr}"))?;
    let bound = listener.local_addr().context("Failed to read the metrics address")?;
    let app = Router::new().route("/metrics", get(scrape)).with_state(Arc::new(Scrape { pool, token }));
    tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(error) = served.await {
            tracing::warn!(%error, "the metrics listener stopped");
        }
    });
    tracing::info!(addr = %bound, "worker metrics listening");
    Ok(bound)
}

async fn scrape(State(scrape): State<Arc<Scrape>>, headers: HeaderMap) -> Response {
    if let Some(token) = &scrape.token {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !metrics::bearer_matches(given, token) {
            return (StatusCode::UNAUTHORIZED, "METRICS_TOKEN is required as a bearer token\n").into_response();
        }
    }
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render(&scrape.pool).await).into_response()
}
