//! The HTTP intake: builds the router over one [`ApiContext`] and serves it
//! until a shutdown signal.

mod audit_log;
mod auth;
mod controller;
pub mod error;
mod extract;
mod force_clear;
mod health;
mod items;
mod lockers;
mod middleware;
mod openapi;
mod pagination;
mod pickup;
mod places;
mod scrape;
pub mod simulator;
mod transactions;
mod users;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::routing::get;
use axum::{Extension, Router};
use lockers_core::accounts::Accounts;
use lockers_core::config::Config;
use lockers_core::messaging::codes::Codes;
use lockers_core::places::directory::Directory;
use lockers_core::rate_limit::RateLimiter;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiContext {
    pub config: Arc<Config>,
    pub db: PgPool,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub limiter: Arc<RateLimiter>,
    /// Code sending and its limits, shared by every use case that sends codes.
    pub codes: Arc<Codes>,
    /// The account use cases with what they share (keys, hashing pool).
    pub accounts: Arc<Accounts>,
    /// The in-process copy of the network that public search reads.
    pub directory: Arc<Directory>,
}

impl ApiContext {
    pub fn new(config: Arc<Config>, db: PgPool, redis: Option<redis::aio::ConnectionManager>) -> Self {
        let limiter = Arc::new(RateLimiter::new(redis.clone(), config.redis_key_prefix.clone()));
        let codes = Arc::new(Codes::new(config.clone(), limiter.clone(), db.clone()));
        let accounts = Arc::new(Accounts::new(config.clone(), limiter.clone(), codes.clone()));
        let directory = Directory::start(db.clone(), config.search_refresh);
        Self { config, db, redis, limiter, codes, accounts, directory }
    }

    /// The deposit rules from the configuration (JSON handlers and pages alike).
    pub fn deposit_rules(&self) -> lockers_core::exchange::deposit::Rules<'_> {
        lockers_core::exchange::deposit::Rules::new(&self.config, self.codes.pepper(), &self.limiter)
    }

    /// The pickup use cases over this process's limiter and codes.
    pub fn collection(&self) -> lockers_core::exchange::collection::Collection {
        lockers_core::exchange::collection::Collection::new(
            self.config.clone(),
            self.limiter.clone(),
            self.codes.clone(),
        )
    }

    /// After a place or locker write through this process: the directory
    /// reloads before the answer goes out, so the writer's next search sees it
    /// (other processes hear of it by NOTIFY).
    pub async fn places_changed(&self) {
        if let Err(error) = self.directory.reload().await {
            tracing::warn!(%error, "search directory reload after a write failed; the listener will retry");
        }
    }
}

/// Every JSON route, with its description: one table for the router and the
/// OpenAPI document (a handler routed here must carry `#[utoipa::path]`).
fn documented_routes() -> OpenApiRouter<ApiContext> {
    let api_v1 = OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(places::router())
        .merge(lockers::router())
        .merge(audit_log::router())
        .merge(controller::router())
        .merge(items::router())
        .merge(force_clear::router())
        .merge(pickup::router())
        .merge(transactions::router());
    OpenApiRouter::with_openapi(openapi::base())
        .nest("/api/v1", api_v1)
        .merge(health::router())
        .merge(scrape::router())
        .routes(routes!(openapi::spec))
}

/// The finished OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(documented_routes().split_for_parts().1)
}

/// The whole router: `/api/v1` resources, the operational routes, and the
/// HTML readers of the API description (`/docs`, `/reference`).
pub fn router(ctx: ApiContext) -> Router {
    lockers_core::telemetry::metrics::install();
    let (json_routes, spec) = documented_routes().split_for_parts();
    let spec = openapi::finish(spec);
    let spec_json = openapi::SpecJson(Arc::new(spec.to_json().unwrap_or_default()));
    let swagger = SwaggerUi::new("/docs")
        .config(utoipa_swagger_ui::Config::from("/openapi.json").persist_authorization(false).try_it_out_enabled(true));
    let readers = Router::new()
        .merge(swagger)
        .route("/reference", get(openapi::reference))
        .route("/reference/rapidoc-min.js", get(openapi::reference_script));
    let config = ctx.config.clone();
    let read_limit = axum::middleware::from_fn_with_state(ctx.clone(), middleware::public_read_limit);
    let console = web::router().layer(axum::middleware::from_fn(web::error_pages));
    let app = json_routes
        .merge(readers)
        .merge(console)
        .layer(Extension(spec_json))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(ctx);
    middleware::apply(app.layer(read_limit), &config)
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
        lockers_core::db::warn_if_over_server_limit(&db, config.database_max_connections, "the intake").await;
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
