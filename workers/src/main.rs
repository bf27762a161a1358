//! `lockers-worker`: runs job workers (and, unless told not to, the scheduler)
//! without the HTTP intake. Start as many as the queues need.

use std::sync::Arc;

use clap::Parser;
use lockers_core::config::{Config, QueueConcurrency};
use lockers_core::{db, telemetry};
use lockers_workers::Runtime;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "lockers-worker", about = "Lockers job workers; settings come from the environment (see README)")]
struct Args {
    /// Queues and concurrency, e.g. `otp=16,notify=4` (default: WORKER_QUEUES).
    #[arg(long)]
    queues: Option<QueueConcurrency>,
    /// Do not run the cron scheduler in this process.
    #[arg(long)]
    no_scheduler: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::from_env()?;
    if let Some(queues) = args.queues {
        config.worker_queues = queues;
    }
    if args.no_scheduler {
        config.scheduler = false;
    }
    telemetry::init(config.log_format);
    let pool = db::connect_and_migrate(&config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(telemetry::cancel_on_signal(shutdown.clone()));
    if let Some(addr) = config.metrics_addr {
        lockers_workers::scrape::serve(addr, pool.clone(), config.metrics_token.clone(), shutdown.clone()).await?;
    }
    Runtime::new(Arc::new(config), pool).run_until_stopped(shutdown).await?;
    tracing::info!("lockers-worker stopped");
    Ok(())
}
