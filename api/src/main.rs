//! `lockers-api`: the HTTP intake; `--with-workers` also runs every worker and
//! the scheduler in this process (the single-machine default).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use lockers_api::Application;
use lockers_core::{config::Config, db, telemetry};
use lockers_workers::providers::Providers;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "lockers-api", about = "Lockers HTTP intake; settings come from the environment (see README)")]
struct Args {
    /// Also run every worker queue and the scheduler in this process.
    #[arg(long)]
    with_workers: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = Arc::new(Config::from_env()?);
    telemetry::init(config.log_format);
    // Built before anything starts: a provider setting that cannot work (an
    // unreadable SMTP_CA_FILE, say) stops the start instead of the workers alone.
    let providers = args.with_workers.then(|| Providers::from_config(&config)).transpose()?;
    let pool = db::connect_and_migrate(&config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(telemetry::cancel_on_signal(shutdown.clone()));

    let app = Application::build(config.clone(), pool.clone()).await?;
    tracing::info!(addr = %app.local_addr()?, with_workers = args.with_workers, "lockers-api listening");
    let workers = providers.map(|providers| {
        let runtime = lockers_workers::Runtime::new(config.clone(), pool.clone()).with_providers(providers);
        tokio::spawn(runtime.run_until_stopped(shutdown.clone()))
    });
    app.run_until_stopped(shutdown.clone()).await?;
    if let Some(workers) = workers {
        workers.await.context("worker runtime panicked")??;
    }
    tracing::info!("lockers-api stopped");
    Ok(())
}
