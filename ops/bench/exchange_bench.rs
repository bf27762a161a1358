//! `lockers-exchange-bench`: full exchanges over HTTP against a running
//! `lockers-api --with-workers` (simulated doors), as a person and a phone
//! would do them, by C concurrent clients for a fixed time:
//!
//! deposit (POST /items) -> drop-off (POST /items/{id}/dropoff) -> poll
//! GET /items/{id} until `stored` -> POST /lockers/{id}/pickup/request ->
//! read the code from the SMS -> POST /lockers/{id}/pickup/collect -> poll
//! until `collected`.
//!
//! Codes are stored hashed, so the bench receives them the way a receiver
//! does: it runs a fake Twilio REST endpoint (`--twilio-listen`) that the app
//! sends SMS to (SMS_PROVIDER=twilio, TWILIO_API_BASE pointing here), and
//! answers `201` at once. Receivers are phone-only, a fresh number per
//! exchange, so no per-contact limit applies; every exchange also comes from
//! its own client address in `X-Forwarded-For` (the app must trust the bench:
//! TRUSTED_PROXIES=127.0.0.1/32), so per-IP limits stay as configured and
//! still are not hit. See NOTES-billing.md / ops/bench/README.md for the run.
//!
//! Setup (not timed) writes a locker point, `--lockers-per-client` lockers
//! per client and one verified sender per client straight into the app's
//! database (`--database-url`), then logs each sender in over HTTP. Results:
//! exchanges/s, p50/p99 per HTTP step, errors by step and status, and the
//! database commits per exchange (pg_stat_database over the timed window).

#[path = "shared.rs"]
mod shared;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use lockers_core::accounts::password::{self, Password};
use lockers_core::db;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use shared::{Inbox, Target, start_twilio};

#[derive(Parser)]
#[command(name = "lockers-exchange-bench")]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Concurrent clients, each doing one exchange after another.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Lockers each client cycles through (a locker is free again only once
    /// the simulated door reports it closed after the pickup).
    #[arg(long, default_value_t = 2)]
    lockers_per_client: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Seconds run before measuring (connections, caches, prepared statements).
    #[arg(long, default_value_t = 5)]
    warmup_secs: u64,
    /// Milliseconds between polls of GET /items/{id}.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Wait for `stored` and `collected` by polling GET /items/{id} alone
    /// (every --poll-ms), instead of waiting for the receiver's SMS (the
    /// "stored" notice, the receipt) and then confirming with one GET.
    #[arg(long)]
    poll_only: bool,
    /// Seconds any one wait (stored, code, collected) may take before the exchange counts as failed.
    #[arg(long, default_value_t = 10)]
    wait_secs: u64,
}

// --- setup ------------------------------------------------------------------------

struct Client {
    n: usize,
    token: String,
    lockers: Vec<Uuid>,
}

/// A point, its lockers and one verified sender per client, written directly;
/// then each sender logs in over HTTP.
async fn setup(args: &Args, pool: &PgPool, http: &reqwest::Client) -> anyhow::Result<Vec<Client>> {
    let run = Uuid::new_v4().simple().to_string();
    let (state, city, point) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    sqlx::query("INSERT INTO states (id, name) VALUES ($1, $2)")
        .bind(state)
        .bind(format!("Bench {run}"))
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO cities (id, state_id, name) VALUES ($1, $2, 'Bench City')")
        .bind(city)
        .bind(state)
        .execute(pool)
        .await?;
    // controller_url NULL: the simulated driver; a heartbeat now in case the app
    // asks for an online point even then.
    sqlx::query(
        "INSERT INTO locker_points (id, city_id, name, address, controller_token_hash, last_heartbeat_at)
         VALUES ($1, $2, 'Bench Point', 'Bench Road 1', $3, now())",
    )
    .bind(point)
    .bind(city)
    .bind(Uuid::new_v4().as_bytes().to_vec())
    .execute(pool)
    .await?;
    let lockers = args.clients * args.lockers_per_client;
    if lockers > 9999 {
        bail!("at most 9999 lockers at one point: lower --clients or --lockers-per-client");
    }
    let locker_ids: Vec<Uuid> = (0..lockers).map(|_| Uuid::now_v7()).collect();
    let doors: Vec<i32> = (1..=lockers as i32).collect();
    sqlx::query("INSERT INTO lockers (id, point_id, door_no, size) SELECT id, $1, door, 'M' FROM unnest($2::uuid[], $3::int[]) AS t(id, door)")
        .bind(point)
        .bind(&locker_ids)
        .bind(&doors)
        .execute(pool)
        .await?;
    let secret = format!("bench password {run}");
    let hash = password::hash(&Password::parse(secret.clone()).map_err(|e| anyhow::anyhow!("{e:?}"))?)
        .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
    let mut clients = Vec::with_capacity(args.clients);
    for n in 0..args.clients {
        let email = format!("bench-{run}-{n}@example.com");
        sqlx::query(
            "INSERT INTO users (id, name, email, password_hash, email_verified_at) VALUES ($1, 'Bench sender', $2, $3, now())",
        )
        .bind(Uuid::now_v7())
        .bind(&email)
        .bind(&hash)
        .execute(pool)
        .await?;
        let response = http
            .post(format!("{}/api/v1/auth/login", args.target.api))
            .header("x-forwarded-for", client_ip(n, u32::MAX).to_string())
            .json(&json!({ "identifier": email, "password": secret }))
            .send()
            .await
            .context("log in (is the app running at --api?)")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let Some(token) = body["access_token"].as_str() else { bail!("login answered {status}: {body}") };
        let mine = locker_ids[n * args.lockers_per_client..(n + 1) * args.lockers_per_client].to_vec();
        clients.push(Client { n, token: token.to_owned(), lockers: mine });
    }
    Ok(clients)
}

/// A distinct client address per (client, exchange): 10.c.x.y.
fn client_ip(client: usize, exchange: u32) -> Ipv4Addr {
    let [_, _, x, y] = exchange.to_be_bytes();
    Ipv4Addr::new(10, (client % 256) as u8, x, y)
}

// --- one client -----------------------------------------------------------------------

const STEPS: [&str; 9] = [
    "deposit",
    "dropoff",
    "get_item",
    "pickup_request",
    "collect",
    // Not HTTP steps: the waits between them (workers, doors, messages, polling).
    "wait_stored",
    "wait_code",
    "wait_collected",
    "exchange",
];

#[derive(Default)]
struct Stats {
    /// Step -> latencies in µs, of requests started inside the measured window.
    latencies: HashMap<&'static str, Vec<u64>>,
    /// (step, what went wrong) -> count.
    errors: HashMap<(&'static str, String), u64>,
    exchanges: u64,
    /// Deposits answered 409 (the client's locker not free yet) and retried.
    retried_deposits: u64,
}

struct Run {
    api: String,
    http: reqwest::Client,
    inbox: Arc<Inbox>,
    measure_from: Instant,
    stop_at: Instant,
    poll: Duration,
    poll_only: bool,
    wait: Duration,
    phones: AtomicU64,
}

struct Failed(&'static str, String);

impl Run {
    async fn call(
        &self,
        stats: &mut Stats,
        step: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), Failed> {
        let started = Instant::now();
        let response = request.send().await.map_err(|e| Failed(step, format!("transport: {e}")))?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if started >= self.measure_from && started < self.stop_at {
            stats.latencies.entry(step).or_default().push(started.elapsed().as_micros() as u64);
        }
        Ok((status, body))
    }

    /// Records how long `what` took since `started`, if it started inside the measured window.
    fn waited(&self, stats: &mut Stats, what: &'static str, started: Instant) {
        if started >= self.measure_from && started < self.stop_at {
            stats.latencies.entry(what).or_default().push(started.elapsed().as_micros() as u64);
        }
    }

    /// Waits until the item is `want`: first for the receiver's `sms`-th
    /// message (the notice that follows that state), unless polling only,
    /// then by GET until the state shows.
    #[allow(clippy::too_many_arguments)]
    async fn wait_status(
        &self,
        stats: &mut Stats,
        c: &Client,
        ip: &str,
        item: &str,
        want: &str,
        phone: &str,
        sms: usize,
    ) -> Result<(), Failed> {
        let started = Instant::now();
        let what = if want == "stored" { "wait_stored" } else { "wait_collected" };
        if !self.poll_only && !self.inbox.wait_count(phone, sms, self.wait).await {
            return Err(Failed(what, format!("no message {sms} to the receiver within {:?}", self.wait)));
        }
        let deadline = Instant::now() + self.wait;
        loop {
            let request = self
                .http
                .get(format!("{}/api/v1/items/{item}", self.api))
                .bearer_auth(&c.token)
                .header("x-forwarded-for", ip);
            let (status, body) = self.call(stats, "get_item", request).await?;
            if status != 200 {
                return Err(Failed("get_item", format!("HTTP {status} {}", body["error"]["code"])));
            }
            if body["status"] == want {
                self.waited(stats, what, started);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Failed(
                    "get_item",
                    format!("not {want} within {:?} (still {})", self.wait, body["status"]),
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn exchange(&self, stats: &mut Stats, c: &Client, k: u32) -> Result<(), Failed> {
        let locker = c.lockers[k as usize % c.lockers.len()];
        let ip = client_ip(c.n, k).to_string();
        let phone = format!("+9198{:08}", self.phones.fetch_add(1, Ordering::Relaxed) % 100_000_000);
        let api = &self.api;
        let post =
            |path: String| self.http.post(format!("{api}{path}")).bearer_auth(&c.token).header("x-forwarded-for", &ip);

        let body = json!({ "locker_id": locker, "name": "Bench parcel", "receiver_phone": phone });
        let deadline = Instant::now() + self.wait;
        let item = loop {
            let (status, answer) = self.call(stats, "deposit", post("/api/v1/items".into()).json(&body)).await?;
            match status {
                201 => break answer["id"].as_str().unwrap_or_default().to_owned(),
                // The door of this locker's last exchange is not reported closed yet.
                409 if Instant::now() < deadline => {
                    stats.retried_deposits += 1;
                    tokio::time::sleep(self.poll).await;
                }
                _ => return Err(Failed("deposit", format!("HTTP {status} {}", answer["error"]["code"]))),
            }
        };
        let (status, answer) = self.call(stats, "dropoff", post(format!("/api/v1/items/{item}/dropoff"))).await?;
        if !(200..300).contains(&status) {
            return Err(Failed("dropoff", format!("HTTP {status} {}", answer["error"]["code"])));
        }
        // The receiver's first message: the "stored" notice.
        self.wait_status(stats, c, &ip, &item, "stored", &phone, 1).await?;

        let mark = self.inbox.count(&phone);
        let request = post(format!("/api/v1/lockers/{locker}/pickup/request")).json(&json!({ "contact": phone }));
        let (status, answer) = self.call(stats, "pickup_request", request).await?;
        if status != 202 {
            return Err(Failed("pickup_request", format!("HTTP {status} {}", answer["error"]["code"])));
        }
        // A notice sent before the code (e.g. "your parcel is stored") may carry
        // six digits too: try each code that arrives, in order.
        let mut tried = 0;
        let asked = Instant::now();
        loop {
            let Some(code) = self.inbox.wait_code(&phone, mark, tried, self.wait).await else {
                return Err(Failed("code", format!("no code by SMS within {:?}", self.wait)));
            };
            if tried == 0 {
                self.waited(stats, "wait_code", asked);
            }
            tried += 1;
            let request = post(format!("/api/v1/lockers/{locker}/pickup/collect")).json(&json!({ "code": code }));
            let (status, answer) = self.call(stats, "collect", request).await?;
            if status == 200 {
                break;
            }
            if tried >= 3 {
                return Err(Failed("collect", format!("HTTP {status} {}", answer["error"]["code"])));
            }
        }
        // After the code's message: the receipt.
        // (The receiver is phone-only: the notice, the code, the receipt.)
        let receipt = mark + tried + 1;
        self.wait_status(stats, c, &ip, &item, "collected", &phone, receipt).await?;
        self.inbox.forget(&phone);
        Ok(())
    }

    async fn client(self: Arc<Self>, c: Client) -> Stats {
        let mut stats = Stats::default();
        let mut k: u32 = 0;
        while Instant::now() < self.stop_at {
            let started = Instant::now();
            match self.exchange(&mut stats, &c, k).await {
                Ok(()) => {
                    let done = Instant::now();
                    if started >= self.measure_from && done <= self.stop_at {
                        stats.exchanges += 1;
                        stats.latencies.entry("exchange").or_default().push(started.elapsed().as_micros() as u64);
                    }
                }
                Err(Failed(step, what)) => {
                    *stats.errors.entry((step, what)).or_default() += 1;
                    // A failing app is not hammered in a tight loop.
                    tokio::time::sleep(self.poll).await;
                }
            }
            k = k.wrapping_add(1);
        }
        stats
    }
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize] as f64 / 1000.0
}

/// (transactions committed in the app's database, transaction ids assigned
/// in the cluster). The first counts read-only transactions too (every GET
/// is one); the second only transactions that wrote, which is what the
/// issue's commit budget is about (on a quiet machine all are the app's).
async fn commits(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    // Backends flush their counters about once a second: let them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Ok(sqlx::query_as(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
    )
    .fetch_one(pool)
    .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = db::connect(&args.target.database_url, 4).await.context("connect to the app's database")?;
    let inbox = start_twilio(&args.target.twilio_listen).await?;
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(args.clients * 2).timeout(Duration::from_secs(30)).build()?;
    let clients = setup(&args, &pool, &http).await?;
    println!(
        "# {} clients, {} lockers each, warm-up {} s, measured {} s, against {}",
        args.clients, args.lockers_per_client, args.warmup_secs, args.secs, args.target.api
    );

    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup_secs);
    let stop_at = measure_from + Duration::from_secs(args.secs);
    let run = Arc::new(Run {
        api: args.target.api.trim_end_matches('/').to_owned(),
        http,
        inbox,
        measure_from,
        stop_at,
        poll: Duration::from_millis(args.poll_ms),
        poll_only: args.poll_only,
        wait: Duration::from_secs(args.wait_secs),
        phones: AtomicU64::new(0),
    });
    let commit_counter = {
        let pool = pool.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(measure_from)).await;
            let before = commits(&pool).await?;
            tokio::time::sleep_until(tokio::time::Instant::from_std(stop_at)).await;
            let after = commits(&pool).await?;
            anyhow::Ok((after.0 - before.0, after.1 - before.1))
        })
    };
    let tasks: Vec<_> = clients.into_iter().map(|c| tokio::spawn(run.clone().client(c))).collect();
    let mut total = Stats::default();
    for task in tasks {
        let stats = task.await?;
        total.exchanges += stats.exchanges;
        total.retried_deposits += stats.retried_deposits;
        for (step, mut l) in stats.latencies {
            total.latencies.entry(step).or_default().append(&mut l);
        }
        for (key, n) in stats.errors {
            *total.errors.entry(key).or_default() += n;
        }
    }
    // The commit window (measure_from..stop_at) is each read's 1.5 s later: the same length.
    let (commit_delta, write_delta) = commit_counter.await??;

    let per_s = total.exchanges as f64 / args.secs as f64;
    println!(
        "EXCHANGES {} in {} s: {per_s:.1}/s at {} clients; deposits retried on 409: {}",
        total.exchanges, args.secs, args.clients, total.retried_deposits
    );
    for step in STEPS {
        let mut l = total.latencies.remove(step).unwrap_or_default();
        l.sort_unstable();
        println!(
            "STEP {step:<15} n={:<7} p50={:>7.2} ms p99={:>7.2} ms max={:>8.2} ms",
            l.len(),
            percentile_ms(&l, 50.0),
            percentile_ms(&l, 99.0),
            percentile_ms(&l, 100.0)
        );
    }
    if total.exchanges > 0 {
        let n = total.exchanges as f64;
        println!(
            "COMMITS {:.1} writing transactions per exchange ({write_delta} xids), {:.1} with read-only ones \
             ({commit_delta} xact_commit), intake and workers alike",
            write_delta as f64 / n,
            commit_delta as f64 / n
        );
    }
    let mut errors: Vec<_> = total.errors.into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    for ((step, what), n) in errors.iter().take(20) {
        println!("ERROR {step}: {what} x{n}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_exchange_of_a_client_has_its_own_address() {
        assert_eq!(client_ip(3, 0x0102).to_string(), "10.3.1.2");
        assert_ne!(client_ip(3, 1), client_ip(3, 2));
        assert_ne!(client_ip(3, 1), client_ip(4, 1));
    }
}
