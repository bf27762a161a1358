//! The HTTP intake: builds the router over one [`ApiContext`] and serves it
//! until a shutdown signal.

mod audit_log;
mod auth;
pub mod error;
mod extract;
mod health;
mod lockers;
mod middleware;
mod pagination;
mod places;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use lockers_core::accounts::access_token::TokenKeys;
use lockers_core::config::{Config, Secret};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiContext {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub tokens: Arc<TokenKeys>,
    pub limiter: Arc<lockers_core::rate_limit::RateLimiter>,
    /// Argon2 runs at most one hash per core at a time: each takes 19 MiB, and
    /// a burst of logins must queue, not exhaust memory.
    pub hashing: Arc<tokio::sync::Semaphore>,
    pepper: Secret,
}

impl ApiContext {
    pub fn new(config: Arc<Config>, db: PgPool, redis: Option<redis::aio::ConnectionManager>) -> Self {
        let limiter = lockers_core::rate_limit::RateLimiter::new(redis.clone(), config.redis_key_prefix.clone());
        Self {
            tokens: Arc::new(TokenKeys::from_config(&config)),
            limiter: Arc::new(limiter),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            )),
            // `validated()` always fills the pepper; a random one only serves a Config built by hand.
            pepper: config.otp_pepper.clone().unwrap_or_else(Secret::random),
            config,
            db,
            redis,
        }
    }

    /// The server secret keying one-time-code hashes.
    pub fn pepper(&self) -> &Secret {
        &self.pepper
    }
}

/// The whole router: `/api/v1` resources plus the operational routes.
pub fn router(ctx: ApiContext) -> Router {
    let api_v1 = Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(places::router())
        .merge(lockers::router())
        .merge(audit_log::router());
    let timeout = ctx.config.request_timeout;
    let read_limit = axum::middleware::from_fn_with_state(ctx.clone(), middleware::public_read_limit);
    let app =
        Router::new().nest("/api/v1", api_v1).merge(health::router()).fallback(middleware::not_found).with_state(ctx);
    middleware::apply(app.layer(read_limit), timeout)
}

/// A built, bound intake that has not started serving yet.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds `config.listen_addr` (port 0 picks a free port) and builds the router.
    pub async fn build(config: Arc<Config>, db: PgPool) -> anyhow::Result<Self> {
        let redis = match &config.redis_url {
            Some(url) => Some(connect_redis(url)?),
            None => None,
        };
        let ctx = ApiContext::new(config.clone(), db, redis);
        let listener = TcpListener::bind(config.listen_addr)
            .await
            .with_context(|| format!("Failed to bind {}", config.listen_addr))?;
        Ok(Self { listener, router: router(ctx) })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener.local_addr().context("Failed to read the bound address")
    }

    /// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let service = self.router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("HTTP server failed")
    }
}

fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
        .set_response_timeout(Some(std::time::Duration::from_secs(2)));
    // Lazy: a Redis that is down at start-up degrades to the in-process limiter
    // (reported `degraded` by /ready) instead of stopping the intake.
    redis::aio::ConnectionManager::new_lazy_with_config(client, config).context("Failed to set up the Redis client")
}
