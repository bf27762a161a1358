//! `lockers-jobs-bench`: the job engine under the workloads of
//! ops/bench/README.md, through the same apalis `WorkerBuilder`,
//! `Monitor` and `JobBackend` the product runs (see ops/bench/README.md).
//!
//! lockers-jobs-bench drain N [--conc C]          bulk-enqueue N no-op jobs, then drain them (C in flight)
//! lockers-jobs-bench latency RATE SECS [--conc C] one job per transaction at RATE/s for SECS; enqueue-to-start latency
//! lockers-jobs-bench share N PROCS [--conc C]    bulk-enqueue N numbered jobs, drain them with PROCS processes
//!                                                 (this binary's `work`); counts each job's runs across them
//!
//! Database: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/bench_lockers), created
//! and migrated if missing. Engine settings come from the usual JOB_* variables.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use apalis::prelude::{BoxDynError, Monitor, WorkerBuilder, WorkerBuilderExt};
use clap::Parser;
use lockers_core::config::Config;
use lockers_core::db;
use lockers_core::jobs::{self, Queue};
use lockers_workers::engine::{Engine, EngineSettings};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Every bench job goes through this queue of the bench database.
const QUEUE: Queue = Queue::Notify;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BenchJob {
    /// Wall clock (µs since the epoch) just before the enqueueing transaction began.
    enq_us: i64,
    /// The job's number in a `share` run, to find a job run twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// (enqueued at, enqueue-to-start latency), both in µs.
static STARTS: Mutex<Vec<(i64, i64)>> = Mutex::new(Vec::new());
static HANDLED: AtomicU64 = AtomicU64::new(0);
/// The numbers of the jobs this process ran (`share`'s workers).
static SEQS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

async fn noop(job: BenchJob) -> Result<(), BoxDynError> {
    let latency = now_us() - job.enq_us;
    if let Ok(mut starts) = STARTS.lock() {
        starts.push((job.enq_us, latency));
    }
    if let (Some(seq), Ok(mut seqs)) = (job.seq, SEQS.lock()) {
        seqs.push(seq);
    }
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[derive(Parser)]
enum Cmd {
    Drain {
        n: u64,
        #[arg(long, default_value_t = 16)]
        conc: usize,
    },
    Latency {
        rate: u64,
        secs: u64,
        #[arg(long, default_value_t = 16)]
        conc: usize,
    },
    Share {
        n: u64,
        procs: usize,
        #[arg(long, default_value_t = 16)]
        conc: usize,
    },
    /// One of `share`'s worker processes: runs jobs until none is left, then
    /// writes the numbers of those it ran to `out`, one a line.
    #[command(hide = true)]
    Work {
        #[arg(long)]
        conc: usize,
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

/// The engine and one worker of `conc` slots, as `Runtime` builds them.
struct Workers {
    engine: Engine,
    stop: CancellationToken,
    monitor: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Workers {
    async fn start(pool: &PgPool, settings: EngineSettings, conc: usize) -> anyhow::Result<Workers> {
        let engine = Engine::start(pool.clone(), settings).await?;
        let stop = CancellationToken::new();
        let backend_engine = engine.clone();
        let monitor = Monitor::new().register(move |restart| {
            WorkerBuilder::new(format!("bench-{restart}"))
                .backend(backend_engine.backend::<BenchJob>(QUEUE))
                .concurrency(conc)
                .build(noop)
        });
        let signal = stop.clone();
        let monitor = tokio::spawn(async move {
            monitor
                .run_with_signal(async move {
                    signal.cancelled().await;
                    Ok(())
                })
                .await
                .context("monitor failed")
        });
        Ok(Workers { engine, stop, monitor })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.monitor.await??;
        self.engine.stop().await?;
        Ok(())
    }
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize] as f64 / 1000.0
}

async fn live_jobs(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('ready', 'running')").fetch_one(pool).await?)
}

async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE jobs, job_workers").execute(pool).await?;
    Ok(())
}

async fn drain(pool: &PgPool, settings: EngineSettings, n: u64, conc: usize) -> anyhow::Result<()> {
    reset(pool).await?;
    let t0 = Instant::now();
    let mut tx = pool.begin().await?;
    let mut left = n;
    while left > 0 {
        let chunk = left.min(5000);
        let batch: Vec<BenchJob> = (0..chunk).map(|_| BenchJob { enq_us: now_us(), seq: None }).collect();
        jobs::enqueue_many(&mut tx, QUEUE, &batch).await?;
        left -= chunk;
    }
    tx.commit().await?;
    let secs = t0.elapsed().as_secs_f64();
    println!("ENQUEUE n={n} secs={secs:.3} rate={:.0}/s", n as f64 / secs);
    sqlx::query("VACUUM ANALYZE jobs").execute(pool).await?;

    let retention = settings.retention;
    let prefetch = settings.prefetch;
    let t0 = Instant::now();
    let workers = Workers::start(pool, settings, conc).await?;
    let cap = Duration::from_secs(80);
    let mut handled_secs = None;
    while t0.elapsed() < cap {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if HANDLED.load(Ordering::SeqCst) >= n {
            handled_secs = Some(t0.elapsed().as_secs_f64());
            break;
        }
    }
    // Finished means acknowledged in the database, not only run.
    let mut acked_secs = None;
    while t0.elapsed() < cap + Duration::from_secs(5) {
        if live_jobs(pool).await? == 0 {
            acked_secs = Some(t0.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let handled = HANDLED.load(Ordering::SeqCst);
    workers.stop().await?;
    println!(
        "DRAIN lockers conc={conc} prefetch={prefetch} retention_s={} n={n} handled={handled} handled_secs={handled_secs:?} \
         acked_secs={acked_secs:?} jobs_per_s_handled={:.0} jobs_per_s_acked={:.0}",
        retention.as_secs(),
        handled as f64 / handled_secs.unwrap_or(t0.elapsed().as_secs_f64()),
        acked_secs.map_or(f64::NAN, |s| n as f64 / s),
    );
    Ok(())
}

async fn latency(pool: &PgPool, settings: EngineSettings, rate: u64, secs: u64, conc: usize) -> anyhow::Result<()> {
    reset(pool).await?;
    let workers = Workers::start(pool, settings, conc).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let total = rate * secs;
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    // Producers on their own connections, as intake replicas would be: one
    // connection cannot commit 2,000 transactions a second here.
    let producers = sqlx::postgres::PgPoolOptions::new()
        .max_connections(32)
        .acquire_timeout(Duration::from_secs(60))
        .connect(&bench_url())
        .await?;
    let calls = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let start = tokio::time::Instant::now();
    let mut inserts = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        let (pool, calls) = (producers.clone(), calls.clone());
        inserts.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut tx = pool.begin().await?;
            jobs::enqueue(&mut tx, QUEUE, &BenchJob { enq_us: now_us(), seq: None }).await?;
            tx.commit().await?;
            if let Ok(mut calls) = calls.lock() {
                calls.push(t.elapsed().as_micros() as i64);
            }
            anyhow::Ok(())
        }));
    }
    for insert in inserts {
        insert.await??;
    }
    let produce_secs = start.elapsed().as_secs_f64();
    let waited = Instant::now();
    while HANDLED.load(Ordering::SeqCst) < total && waited.elapsed() < Duration::from_secs(40) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let tail = waited.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    workers.stop().await?;

    let starts = STARTS.lock().map_err(|_| anyhow::anyhow!("latency log poisoned"))?.clone();
    let mut latencies: Vec<i64> = starts.iter().map(|s| s.1).collect();
    latencies.sort_unstable();
    let mut calls = calls.lock().map_err(|_| anyhow::anyhow!("call log poisoned"))?.clone();
    calls.sort_unstable();
    let first = starts.iter().map(|s| s.0).min().unwrap_or(0);
    let mut per_second = vec![0i64; secs as usize + 2];
    let last = per_second.len() - 1;
    for (enq, lat) in &starts {
        let bucket = (((enq - first) / 1_000_000) as usize).min(last);
        per_second[bucket] = per_second[bucket].max(*lat / 1000);
    }
    println!(
        "LATENCY lockers conc={conc} produced={total} in {produce_secs:.2}s ({:.0}/s) handled={} tail_wait={tail:.2}s \
         p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} over100ms={} enqueue_call_p50_ms={:.2} enqueue_call_p99_ms={:.2}",
        total as f64 / produce_secs,
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
        latencies.iter().filter(|l| **l > 100_000).count(),
        percentile(&calls, 50.0),
        percentile(&calls, 99.0),
    );
    println!("per-second max latency ms: {per_second:?}");
    Ok(())
}

/// Several processes share one queue (README "Beyond one machine"): N
/// numbered jobs, drained by `procs` worker processes of `conc` slots each;
/// every job must run exactly once across them.
async fn share(pool: &PgPool, n: u64, procs: usize, conc: usize) -> anyhow::Result<()> {
    reset(pool).await?;
    let mut tx = pool.begin().await?;
    for start in (0..n).step_by(5000) {
        let batch: Vec<BenchJob> =
            (start..n.min(start + 5000)).map(|seq| BenchJob { enq_us: now_us(), seq: Some(seq) }).collect();
        jobs::enqueue_many(&mut tx, QUEUE, &batch).await?;
    }
    tx.commit().await?;
    sqlx::query("VACUUM ANALYZE jobs").execute(pool).await?;
    let dir = std::env::temp_dir();
    let outs: Vec<_> = (0..procs).map(|k| dir.join(format!("lockers-share-{}-{k}.txt", std::process::id()))).collect();
    let exe = std::env::current_exe()?;
    let t0 = Instant::now();
    let mut children = Vec::new();
    for out in &outs {
        let child = tokio::process::Command::new(&exe)
            .args(["work", "--conc", &conc.to_string(), "--out"])
            .arg(out)
            .kill_on_drop(true)
            .spawn()?;
        children.push(child);
    }
    // Done means acknowledged in the database by whichever process ran it.
    while live_jobs(pool).await? > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    for mut child in children {
        if !child.wait().await?.success() {
            bail!("a worker process failed");
        }
    }
    let mut runs = vec![0u32; n as usize];
    let mut per_process = Vec::new();
    for out in &outs {
        let text = std::fs::read_to_string(out)?;
        std::fs::remove_file(out)?;
        let seqs: Vec<usize> = text.lines().map(str::parse).collect::<Result<_, _>>()?;
        per_process.push(seqs.len());
        for seq in seqs {
            runs[seq] += 1;
        }
    }
    let twice = runs.iter().filter(|r| **r > 1).count();
    let never = runs.iter().filter(|r| **r == 0).count();
    println!(
        "SHARE procs={procs} conc={conc} n={n} ran={} run_twice={twice} never_run={never} secs={secs:.3} \
         jobs_per_s={:.0} per_process={per_process:?}",
        per_process.iter().sum::<usize>(),
        n as f64 / secs,
    );
    if twice > 0 || never > 0 {
        bail!("{twice} jobs ran more than once and {never} never ran");
    }
    Ok(())
}

/// A `share` worker process: runs jobs until the queue has none left.
async fn work(pool: &PgPool, settings: EngineSettings, conc: usize, out: &std::path::Path) -> anyhow::Result<()> {
    let workers = Workers::start(pool, settings, conc).await?;
    while live_jobs(pool).await? > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.stop().await?;
    let seqs = SEQS.lock().map_err(|_| anyhow::anyhow!("run log poisoned"))?.clone();
    let text: String = seqs.iter().map(|seq| format!("{seq}\n")).collect();
    std::fs::write(out, text)?;
    Ok(())
}

fn bench_url() -> String {
    std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/bench_lockers".into())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cmd = Cmd::parse();
    let config = Config::try_parse_from(["lockers-jobs-bench"])?.validated()?;
    let settings = EngineSettings::from_config(&config);
    let url = bench_url();
    db::ensure_database_exists(&url).await?;
    let pool = db::connect(&url, 8).await?;
    db::migrate(&pool).await?;
    match cmd {
        Cmd::Drain { n, conc } => drain(&pool, settings, n, conc).await?,
        Cmd::Latency { rate, secs, conc } => {
            if rate == 0 {
                bail!("RATE must be positive");
            }
            latency(&pool, settings, rate, secs, conc).await?
        }
        Cmd::Share { n, procs, conc } => share(&pool, n, procs, conc).await?,
        Cmd::Work { conc, out } => work(&pool, settings, conc, &out).await?,
    }
    Ok(())
}
