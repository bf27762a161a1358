//! `lockers-admin`: the operator CLI.

use std::io::BufRead;

use anyhow::Context;
use clap::{Parser, Subcommand};
use lockers_core::accounts::admin;
use lockers_core::accounts::contact::Email;
use lockers_core::accounts::password::Password;
use lockers_core::accounts::users::{Name, Promotion};
use lockers_core::config::Config;
use lockers_core::places::lockers::Size::{self, L, M, S, Xl};
use lockers_core::places::{self, DemoPoint, SeedError};
use lockers_core::{audit, db, jobs, messaging, telemetry};

#[derive(Parser)]
#[command(name = "lockers-admin", about = "Lockers operator CLI; settings come from the environment (see README)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the database if missing and apply every migration.
    Migrate,
    /// Create an admin account (password read from standard input), or make an
    /// existing account an admin with that password (its old password and
    /// sessions end; its email counts as proven).
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
    /// Create a small demo network (states, cities, 10 locker points, 120 lockers); skipped if places exist.
    SeedDemo,
    /// Job queue state.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Hourly billing accrual.
    Billing {
        #[command(subcommand)]
        command: BillingCommand,
    },
    /// Messages that failed, and sending one again.
    Notifications {
        #[command(subcommand)]
        command: NotificationsCommand,
    },
    /// Expired state (codes, refresh tokens, accounts never proven, old notifications)
    /// and the exchange's time-driven transitions.
    Sweep {
        #[command(subcommand)]
        command: SweepCommand,
    },
    /// Stand in for a locker point's door controller (protocol v1): answers opens,
    /// deduplicates idempotency keys, reports doors closed and heartbeats to the
    /// backend, injects failures. Needs no database.
    SimulateController(lockers_api::simulator::SimulatorArgs),
}

#[derive(Subcommand)]
enum BillingCommand {
    /// Charge every hour open items have started, now, as the scheduled run does
    /// (audited as `billing.run`). For external schedulers with SCHEDULER=false.
    Run,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Sweep now, as the scheduled sweep does (audited as `sweep.run`).
    Run,
}

#[derive(Subcommand)]
enum NotificationsCommand {
    /// Failed messages (refused by the provider or out of attempts), newest first.
    Failed {
        /// Show at most this many (1 to 10000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// Send a failed message again as a new message (the failed one is kept);
    /// refused for codes, whose text is not kept: the user asks for a new one.
    Resend {
        /// The message id, as `notifications failed` lists it.
        id: uuid::Uuid,
        /// Also resend a message whose delivery is `unknown` (the provider got
        /// it and never answered): only once its log shows it was not sent.
        #[arg(long)]
        unknown: bool,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Depth and state counts per queue.
    Stats,
    /// Dead jobs (out of attempts or failed permanently), most recent first.
    Failed {
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Put a dead job back in its queue with a fresh set of attempts.
    Retry {
        /// The job id, as `jobs failed` lists it.
        id: i64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::SimulateController(args) = cli.command {
        telemetry::init(lockers_core::config::LogFormat::Text);
        return lockers_api::simulator::run(args).await;
    }
    let config = Config::from_env()?;
    telemetry::init(config.log_format);
    let pool = db::connect_and_migrate(&config).await?;
    match cli.command {
        Command::Migrate => println!("database {} is migrated", config.database_name().unwrap_or("?")),
        Command::CreateAdmin { email, name } => create_admin(&pool, &email, &name).await?,
        Command::SeedDemo => seed_demo(&pool, &places::ControllerKey::from_config(&config)).await?,
        Command::Jobs { command } => run_jobs_command(&pool, command).await?,
        Command::Billing { command: BillingCommand::Run } => billing_run(&pool, &config).await?,
        Command::Notifications { command } => run_notifications_command(&pool, command).await?,
        Command::Sweep { command: SweepCommand::Run } => sweep_run(&pool, &config).await?,
        Command::SimulateController(_) => unreachable!("handled before the database is opened"),
    }
    Ok(())
}

async fn run_jobs_command(pool: &sqlx::PgPool, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::Stats => {
            println!(
                "{:<10} {:>8} {:>10} {:>8} {:>9} {:>6} {:>14}",
                "queue", "ready", "scheduled", "running", "retrying", "dead", "oldest_ready_s"
            );
            for q in jobs::admin::stats(pool).await? {
                println!(
                    "{:<10} {:>8} {:>10} {:>8} {:>9} {:>6} {:>14}",
                    q.queue,
                    q.ready,
                    q.scheduled,
                    q.running,
                    q.retrying,
                    q.dead,
                    q.oldest_ready_secs.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into())
                );
            }
        }
        JobsCommand::Failed { limit } => {
            println!("{:<10} {:<8} {:>8} {:<25} last_error", "id", "queue", "attempts", "died_at");
            for job in jobs::admin::dead(pool, limit).await? {
                println!(
                    "{:<10} {:<8} {:>8} {:<25} {}",
                    job.id,
                    job.queue,
                    job.attempts,
                    job.finished_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                    job.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        JobsCommand::Retry { id } => {
            let job = jobs::admin::retry_dead(&mut *pool.acquire().await?, &audit::Actor::operator(), id).await?;
            println!("job {id} ({} queue) is queued again", job.queue);
        }
    }
    Ok(())
}

/// Runs the accrual the worker runs on `BILLING_CRON`, now, as the operator.
async fn billing_run(pool: &sqlx::PgPool, config: &Config) -> anyhow::Result<()> {
    let tariffs = lockers_core::billing::Tariffs::from_config(config);
    let mut conn = pool.acquire().await?;
    let started = std::time::Instant::now();
    let report =
        lockers_core::billing::accrual::run(&mut conn, &audit::Actor::operator(), chrono::Utc::now(), &tariffs).await?;
    println!(
        "billed: {} open items, {} charge lines written in {:.3} s",
        report.items,
        report.lines,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_notifications_command(pool: &sqlx::PgPool, command: NotificationsCommand) -> anyhow::Result<()> {
    match command {
        NotificationsCommand::Failed { limit } => {
            println!(
                "{:<36} {:<7} {:<24} {:<18} {:>8} {:<25} {:<36} last_error",
                "id", "channel", "recipient", "kind", "attempts", "created_at", "resent_as"
            );
            for m in messaging::admin::failed(pool, limit).await? {
                println!(
                    "{:<36} {:<7} {:<24} {:<18} {:>8} {:<25} {:<36} {}",
                    m.id,
                    m.channel,
                    m.recipient,
                    m.kind,
                    m.attempts,
                    m.created_at.to_rfc3339(),
                    m.resent_as.map(|id| id.to_string()).unwrap_or_else(|| "-".into()),
                    m.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        NotificationsCommand::Resend { id, unknown } => {
            use messaging::admin::Resendable;
            let which = if unknown { Resendable::FailedOrUnknown } else { Resendable::Failed };
            let by = audit::Actor::operator();
            let resent = messaging::admin::resend(&mut *pool.acquire().await?, &by, id, which).await?;
            println!(
                "notification {id} is sent again as {} ({} to {}); a running worker delivers it",
                resent.id, resent.channel, resent.recipient
            );
        }
    }
    Ok(())
}

/// Runs the sweep the worker runs on `SWEEP_CRON`, now, as the operator.
async fn sweep_run(pool: &sqlx::PgPool, config: &Config) -> anyhow::Result<()> {
    let settings = lockers_core::sweep::SweepSettings::from_config(config);
    let mut conn = pool.acquire().await?;
    let at = chrono::Utc::now();
    let started = std::time::Instant::now();
    let report = lockers_core::sweep::run(&mut conn, &audit::Actor::operator(), at, &settings).await?;
    println!(
        "swept: {} codes, {} refresh tokens, {} accounts never proven, {} finished notifications; \
         {} abandoned deliveries now unknown, {} undelivered codes failed",
        report.codes, report.tokens, report.accounts, report.notifications, report.unknown, report.expired
    );
    println!(
        "exchange: {} reservations expired, {} drop-off doors left open, {} items expired, {} reminders, \
         {} items abandoned, {} stuck door commands failed; {:.3} s",
        report.reservations_expired,
        report.doors_left_open,
        report.expired_items,
        report.reminders,
        report.abandoned_items,
        report.stuck_doors_failed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Creates the admin, or promotes the account already registered under the
/// email, with the password read from standard input (`admin::create_admin`,
/// acting as the operator: it replaces a promoted account's password, ends
/// its sessions and marks the email proven).
async fn create_admin(pool: &sqlx::PgPool, email: &str, name: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).context("--email is not a valid email address")?;
    let name = Name::parse(name).context("--name must be 1 to 100 characters")?;
    eprintln!("password for {email} (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("Failed to read the password")?;
    let password = Password::parse(line.trim_end_matches(['\r', '\n']).to_owned())?;
    let mut conn = pool.acquire().await?;
    match admin::create_admin(&mut conn, &audit::Actor::operator(), &name, &email, password).await? {
        Promotion::Created(user) => println!("admin {email} created (id {})", user.id),
        Promotion::Promoted(user) => println!(
            "{email} already had an account (id {}); it is now an admin with the password just given: \
             its previous password and every session have ended",
            user.id
        ),
    }
    Ok(())
}

/// (state, city, point name, address) of the demo network.
const DEMO_POINTS: [DemoPoint<'static>; 10] = [
    ("Karnataka", "Bengaluru", "Koramangala 5th Block Hub", "80 Feet Road, Koramangala 5th Block"),
    ("Karnataka", "Bengaluru", "Indiranagar Metro Lockers", "100 Feet Road, near Indiranagar Metro Station"),
    ("Karnataka", "Bengaluru", "Whitefield ITPL Gate", "ITPL Main Road, Whitefield"),
    ("Karnataka", "Mysuru", "Devaraja Market Lockers", "Sayyaji Rao Road, Devaraja Mohalla"),
    ("Maharashtra", "Mumbai", "Bandra West Station", "Hill Road, Bandra West"),
    ("Maharashtra", "Mumbai", "Andheri East Metro", "Andheri-Kurla Road, Andheri East"),
    ("Maharashtra", "Pune", "Koregaon Park Plaza", "North Main Road, Koregaon Park"),
    ("Tamil Nadu", "Chennai", "Pondy Bazaar Lockers", "Pondy Bazaar, Thyagaraya Nagar"),
    ("Delhi", "New Delhi", "Connaught Place Inner Circle", "Block A, Connaught Place"),
    ("Goa", "Panaji", "Café Mercado Lockers", "Rua de Ourém, Fontainhas"),
];

/// Door layout of every demo point: 4 S, 4 M, 2 L, 2 XL.
const DEMO_DOORS: [Size; 12] = [S, S, S, S, M, M, M, M, L, L, Xl, Xl];

async fn seed_demo(pool: &sqlx::PgPool, key: &places::ControllerKey) -> anyhow::Result<()> {
    let by = audit::Actor::operator();
    let seeded = match places::seed_network(&mut *pool.acquire().await?, &by, key, &DEMO_POINTS, &DEMO_DOORS).await {
        Ok(seeded) => seeded,
        Err(refused @ SeedError::PlacesExist(_)) => {
            println!("{refused}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "seeded {} states, {} cities, {} locker points, {} lockers (controller tokens: rotate per point \
         with POST /api/v1/locker-points/{{id}}/controller-token)",
        seeded.states, seeded.cities, seeded.points, seeded.lockers
    );
    Ok(())
}
