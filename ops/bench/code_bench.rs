//! `lockers-code-bench`: how soon a receiver's request for a pickup code
//! reaches the SMS provider, at a steady rate, against a running
//! `lockers-api --with-workers` that sends SMS to this bench's fake Twilio.
//!
//! Setup (not timed) writes straight into the app's database (`--database-url`)
//! one stored item per locker, enough for every request of the run (`--rate`
//! x (`--warmup-secs` + `--secs`)), each for its own receiver phone, so no
//! per-contact limit applies and every request really issues and sends a code.
//! Then the bench sends `POST /lockers/{id}/pickup/request {"contact": phone}`
//! open loop, `--rate` a second (a late answer does not slow the next
//! request), each from its own client address in `X-Forwarded-For` (the app
//! must trust the bench: TRUSTED_PROXIES=127.0.0.1/32), so per-address limits
//! stay as configured and are not hit.
//!
//! Measured per request, from just before it is sent: the HTTP answer, and the
//! arrival of the SMS at the fake Twilio (what the target is about).
//! Requests of the warm-up are not counted. `code.sh` does the whole run.

#[path = "shared.rs"]
mod shared;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use lockers_core::db;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use shared::{Target, start_twilio};

#[derive(Parser)]
#[command(name = "lockers-code-bench")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Code requests per second.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 60)]
    secs: u32,
    /// Seconds run at the same rate before measuring.
    #[arg(long, default_value_t = 5)]
    warmup_secs: u32,
    /// Seconds a request's SMS may take before it counts as missing.
    #[arg(long, default_value_t = 10)]
    wait_secs: u64,
}

/// A stored item waiting for its receiver.
struct Waiting {
    locker_id: Uuid,
    phone: String,
}

/// Writes `n` stored items, one per locker, 100 lockers per point, in one
/// transaction of set-based statements.
async fn setup(pool: &PgPool, n: u32) -> anyhow::Result<Vec<Waiting>> {
    let run = Uuid::new_v4().simple().to_string();
    let mut tx = pool.begin().await?;
    let (state, city, sender) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    sqlx::query("INSERT INTO states (id, name) VALUES ($1, $2)")
        .bind(state)
        .bind(format!("Bench state {run}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO cities (id, state_id, name) VALUES ($1, $2, 'Bench city')")
        .bind(city)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO users (id, name, email, email_verified_at) VALUES ($1, 'Bench sender', $2, now())")
        .bind(sender)
        .bind(format!("code-bench-{run}@example.com"))
        .execute(&mut *tx)
        .await?;
    let points = n.div_ceil(100) as i32;
    sqlx::query(
        "INSERT INTO locker_points (id, city_id, name, address, controller_token_hash, last_heartbeat_at)
         SELECT gen_random_uuid(), $1, 'Bench point ' || p, p || ' Bench Road', decode(md5($2 || p), 'hex'), now()
         FROM generate_series(1, $3) AS p",
    )
    .bind(city)
    .bind(&run)
    .bind(points)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO lockers (id, point_id, door_no, size, status)
         SELECT gen_random_uuid(), p.id, d, 'M', 'occupied'
         FROM locker_points AS p CROSS JOIN generate_series(1, 100) AS d
         WHERE p.city_id = $1",
    )
    .bind(city)
    .execute(&mut *tx)
    .await?;
    // Receivers +91 70000 00001 and on: Indian mobile numbers, allowed by default.
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "WITH picked AS (
             SELECT l.id, l.size, row_number() OVER (ORDER BY p.name, l.door_no) AS k
             FROM lockers AS l JOIN locker_points AS p ON p.id = l.point_id
             WHERE p.city_id = $1
             ORDER BY k LIMIT $3),
         stored AS (
             INSERT INTO items (id, locker_id, size, sender_id, name, receiver_phone, status,
                                reserved_at, dropoff_by, stored_at, pickup_by)
             SELECT gen_random_uuid(), id, size, $2, 'Bench parcel', '+91' || (7000000000 + k)::text, 'stored',
                    now() - interval '10 minutes', now() + interval '5 minutes', now(), now() + interval '72 hours'
             FROM picked
             RETURNING locker_id, receiver_phone)
         SELECT locker_id, receiver_phone FROM stored",
    )
    .bind(city)
    .bind(sender)
    .bind(i64::from(n))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if rows.len() != n as usize {
        bail!("setup wrote {} items, {n} asked for", rows.len());
    }
    Ok(rows.into_iter().map(|(locker_id, phone)| Waiting { locker_id, phone }).collect())
}

/// A distinct client address per request: 10.x.y.z.
fn client_ip(n: u32) -> Ipv4Addr {
    let [_, x, y, z] = n.to_be_bytes();
    Ipv4Addr::new(10, x, y, z)
}

/// What one request saw: its HTTP status, the answer's time and the SMS's.
struct Outcome {
    measured: bool,
    status: u16,
    answered: Duration,
    delivered: Option<Duration>,
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize].as_secs_f64() * 1000.0
}

fn summary(name: &str, mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    format!(
        "{name}: n={} p50={:.1} ms p90={:.1} ms p99={:.1} ms max={:.1} ms",
        samples.len(),
        percentile_ms(&samples, 50.0),
        percentile_ms(&samples, 90.0),
        percentile_ms(&samples, 99.0),
        percentile_ms(&samples, 100.0)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = db::connect(&args.target.database_url, 4).await.context("connect to the app's database")?;
    let inbox = start_twilio(&args.target.twilio_listen).await?;
    let warmup = args.rate * args.warmup_secs;
    let total = warmup + args.rate * args.secs;
    let waiting = setup(&pool, total).await.context("setup")?;
    let api = args.target.api.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    println!(
        "# {} requests/s for {} s (+{} s warm-up), one stored item and receiver per request, against {api}",
        args.rate, args.secs, args.warmup_secs
    );

    let every = Duration::from_secs(1) / args.rate;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let wait = Duration::from_secs(args.wait_secs);
    let mut tasks = Vec::with_capacity(total as usize);
    for (n, item) in waiting.into_iter().enumerate() {
        ticks.tick().await;
        let (http, inbox, api) = (http.clone(), inbox.clone(), api.clone());
        let n = n as u32;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = http
                .post(format!("{api}/api/v1/lockers/{}/pickup/request", item.locker_id))
                .header("x-forwarded-for", client_ip(n).to_string())
                .json(&json!({ "contact": item.phone }))
                .send()
                .await;
            let answered = sent.elapsed();
            let status = response.map_or(0, |r| r.status().as_u16());
            let delivered = if inbox.wait_count(&item.phone, 1, wait).await {
                inbox.first_arrival(&item.phone).map(|at| at.duration_since(sent))
            } else {
                None
            };
            Outcome { measured: n >= warmup, status, answered, delivered }
        }));
    }
    let mut answers = Vec::new();
    let mut deliveries = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    let mut missing = 0;
    for task in tasks {
        let outcome = task.await?;
        if !outcome.measured {
            continue;
        }
        *statuses.entry(outcome.status).or_default() += 1;
        answers.push(outcome.answered);
        match outcome.delivered {
            Some(d) => deliveries.push(d),
            None => missing += 1,
        }
    }
    println!(
        "REQUESTS {} measured; answers by status: {statuses:?}; SMS missing after {} s: {missing}",
        answers.len(),
        args.wait_secs
    );
    println!("{}", summary("HTTP answer", answers));
    println!("{}", summary("request -> SMS at the provider", deliveries));
    Ok(())
}
