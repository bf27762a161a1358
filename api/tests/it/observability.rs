//! Metrics and logs seen from outside, as an operator sees them: the shipped
//! `lockers-api --with-workers` binary as a child process (JSON logs on its
//! stderr, its own metrics registry) runs a whole exchange with the shipped
//! controller simulator, fake Twilio and SMTP; then its `/metrics` must show
//! the series the alerts use, and its logs must hold no code, token, password
//! or secret, no unmasked contact, and the request id of the drop-off in the
//! door job's lines.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::exchange::{id, json_of, site};
use crate::e2e::{
    HTTP_DOORS, Simulator, WITHIN, collect_by_sms, comes_online, ledger_row, locker_reaches, reaches, sms_code, wire,
};
use crate::fakes::controller::simulator_url;
use crate::fakes::smtp::FakeSmtp;
use crate::fakes::twilio::FakeTwilio;
use crate::harness::{self, Stack, TestApp, eventually};

const PASSWORD: &str = "correct horse battery staple 42";
const RECEIVER_PHONE: &str = "+919812345670";
const JWT_SECRET: &str = "jwt-secret-for-the-observability-test-0123456789";
const OTP_PEPPER: &str = "otp-pepper-for-the-observability-test-0123456789";
const METRICS_TOKEN: &str = "metrics-token-for-the-observability-test";
const REQUEST_ID: &str = "obs-test-dropoff-request-0001";

/// `lockers-api --with-workers` as a child process whose stderr lines are kept.
pub(crate) struct Intake {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Intake {
    fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Starts the binary on a fresh database with the fakes' settings as
/// environment variables, and waits for the address it logs.
async fn spawn_intake() -> (Stack, Intake) {
    let mut flags: Vec<String> = HTTP_DOORS.iter().map(|s| s.to_string()).collect();
    flags.extend([
        format!("--jwt-secret={JWT_SECRET}"),
        format!("--otp-pepper={OTP_PEPPER}"),
        format!("--metrics-token={METRICS_TOKEN}"),
    ]);
    spawn_intake_with(flags).await
}

/// The shipped `lockers-api --with-workers` on a fresh database, with the
/// fakes' settings, JSON logs and `extra` flags (as environment variables).
pub(crate) async fn spawn_intake_with(extra: Vec<String>) -> (Stack, Intake) {
    let (smtp, twilio) = (FakeSmtp::start().await, FakeTwilio::start().await);
    let database = harness::fresh_database().await;
    let mut flags = Stack::flags(&smtp, &twilio);
    flags.extend(extra);
    flags.push("--log-format=json".into());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let args = harness::config_args(&database, &flags);
    let config = Arc::new(harness::config(&database, &flags));
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockers-api"))
        .arg("--with-workers")
        .envs(harness::config_env(&args))
        // Everything of ours at debug: a secret must not hide at any level.
        .env(
            "RUST_LOG",
            "debug,sqlx=warn,hyper=info,hyper_util=info,h2=info,rustls=info,reqwest=info,tower=info,apalis_core=info",
        )
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lockers-api");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let kept = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    let intake = Intake { child, lines };
    let listening = || {
        intake.logs().iter().find_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            (v["fields"]["message"] == "lockers-api listening")
                .then(|| v["fields"]["addr"].as_str().map(str::to_owned))?
        })
    };
    assert!(eventually(Duration::from_secs(60), || async { listening().is_some() }).await, "{:?}", intake.logs());
    let addr = listening().unwrap().parse().expect("a socket address");
    let pool = lockers_core::db::connect(&config.database_url, 4).await.expect("connect");
    let app = TestApp::external(addr, config, pool, database);
    (Stack::external(app, smtp, twilio), intake)
}

/// What a short exchange leaves to look for: every secret it handled.
struct Exchanged {
    secrets: Vec<(&'static str, String)>,
    sender_email: String,
}

/// Signup with a password, email proven, login; an admin's site wired to the
/// shipped simulator; deposit, drop-off (with a known request id), stored;
/// the receiver's code by SMS; collected and billed.
async fn exchange(stack: &Stack) -> Exchanged {
    let email = format!("observed.sender.{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(stack.signup("Observed Sender", &email, None, PASSWORD).await.status(), 201);
    let verify_code = stack.email_code(&email, 1).await;
    assert_eq!(stack.verify_keeping_password(&email, &verify_code, PASSWORD).await.status(), 200);
    let tokens = json_of(stack.login(&email, PASSWORD).await, 200).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let (_, admin) = stack.user_with_role("admin").await;
    let site = site(stack, &admin, &["M"]).await;
    let child = Command::new(env!("CARGO_BIN_EXE_lockers-admin"))
        .args(["simulate-controller", "--listen", "127.0.0.1:0", "--api", &stack.url(""), "--token"])
        .arg(&site.controller_token)
        .args(["--point-id", &site.point, "--heartbeat-secs", "1", "--close-after-ms", "100"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut simulator = Simulator(child);
    let url = simulator_url(&mut simulator.0).await;
    wire(stack, &admin, &site, &url).await;
    comes_online(stack, &site.point).await;

    let locker = site.lockers[0].as_str();
    let body = json!({ "locker_id": locker, "name": "Books", "receiver_phone": RECEIVER_PHONE });
    let reserved = json_of(stack.deposit(&access, &body).await, 201).await;
    let item = id(&reserved);
    let drop_off = stack
        .http
        .post(stack.url(&format!("/api/v1/items/{item}/dropoff")))
        .bearer_auth(&access)
        .header("x-request-id", REQUEST_ID)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    json_of(drop_off, 200).await;
    reaches(stack, &item, "stored").await;
    collect_by_sms(stack, locker, RECEIVER_PHONE).await;
    reaches(stack, &item, "collected").await;
    locker_reaches(stack, locker, "available").await;
    assert_eq!(ledger_row(stack, &access, &item).await["amount_paise"], 5000);
    let pickup_code = sms_code(stack, RECEIVER_PHONE).await;
    drop(simulator);

    let mut secrets = vec![
        ("password", PASSWORD.to_owned()),
        ("verification code", verify_code),
        ("pickup code", pickup_code),
        ("access token", access),
        ("refresh token", refresh),
        ("controller token", site.controller_token.clone()),
        ("JWT secret", JWT_SECRET.to_owned()),
        ("OTP pepper", OTP_PEPPER.to_owned()),
        ("metrics token", METRICS_TOKEN.to_owned()),
    ];
    if let Some(code) = reserved["dropoff_code"].as_str() {
        secrets.push(("drop-off code", code.to_owned()));
    }
    Exchanged { secrets, sender_email: email }
}

#[tokio::test]
async fn after_a_short_exchange_the_logs_hold_no_secret_or_contact_and_the_door_job_logs_its_request_id() {
    let (stack, intake) = spawn_intake().await;
    let done = exchange(&stack).await;
    // The last outcomes (the sender's mail) may still be on their way.
    let mailed = eventually(WITHIN, || async { stack.smtp.mails_to(&done.sender_email).len() >= 3 }).await;
    assert!(mailed, "the sender's notices");
    let logs = intake.logs();
    assert!(logs.len() > 20, "the intake logged: {logs:?}");
    for line in &logs {
        assert!(!line.contains('\u{1b}'), "a colour code in a log going to a pipe: {line}");
        assert!(serde_json::from_str::<Value>(line).is_ok(), "LOG_FORMAT=json: every line is JSON: {line}");
        for (what, secret) in &done.secrets {
            assert!(!line.contains(secret.as_str()), "the {what} is in the log: {line}");
        }
        let digits = RECEIVER_PHONE.trim_start_matches('+');
        assert!(!line.contains(digits), "the receiver's phone, unmasked: {line}");
        let local = done.sender_email.split('@').next().unwrap();
        assert!(!line.contains(local), "the sender's email, unmasked: {line}");
    }
    // The drop-off's request id: on the request's lines and on the door job it enqueued.
    let door_job = logs.iter().find(|l| l.contains(REQUEST_ID) && l.contains("\"queue\":\"door\""));
    assert!(door_job.is_some(), "no door job line carries the request id {REQUEST_ID}: {logs:#?}");
}

/// The value of the first sample of `series` whose labels contain every one of `labels`.
fn sample(text: &str, series: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (name_labels, value) = line.rsplit_once(' ')?;
        let name = name_labels.split('{').next()?;
        (name == series && labels.iter().all(|l| name_labels.contains(l))).then(|| value.parse().ok())?
    })
}

#[tokio::test]
async fn after_a_short_exchange_metrics_show_http_jobs_queues_business_and_process_series() {
    let (stack, _intake) = spawn_intake().await;
    exchange(&stack).await;
    let refused = stack.get("/metrics").await;
    assert_eq!(refused.status(), 401, "METRICS_TOKEN is set: the scrape must bear it");
    let scraped = stack.get_as("/metrics", METRICS_TOKEN).await;
    assert_eq!(scraped.status(), 200);
    assert!(scraped.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = scraped.text().await.unwrap();
    let has = |series: &str, labels: &[&str]| sample(&text, series, labels);
    let at_least_one = |series: &str, labels: &[&str]| {
        let value = has(series, labels);
        assert!(value.is_some_and(|v| v >= 1.0), "{series}{labels:?} = {value:?} in\n{text}");
    };

    // HTTP by route template (never the raw path with an id) and status.
    at_least_one("lockers_http_requests_total", &["route=\"/api/v1/items\"", "status=\"201\"", "method=\"POST\""]);
    at_least_one("lockers_http_requests_total", &["route=\"/api/v1/items/{id}/dropoff\"", "status=\"200\""]);
    at_least_one("lockers_http_request_duration_seconds_count", &["route=\"/api/v1/lockers/{id}/pickup/collect\""]);
    at_least_one("lockers_http_request_duration_seconds_bucket", &["route=\"/api/v1/items\"", "le=\"+Inf\""]);
    assert!(!text.contains("route=\"/api/v1/items/0"), "a raw path became a label");

    // Jobs per queue: enqueued, started, succeeded, and how long they waited to start.
    for queue in ["otp", "notify", "door"] {
        let q = format!("queue=\"{queue}\"");
        at_least_one("lockers_jobs_enqueued_total", &[&q]);
        at_least_one("lockers_jobs_started_total", &[&q]);
        at_least_one("lockers_jobs_succeeded_total", &[&q]);
        at_least_one("lockers_job_start_delay_seconds_count", &[&q]);
    }
    // Queue gauges, read at scrape time, for every queue (zeros included).
    for queue in ["otp", "notify", "door", "billing", "sweep"] {
        let q = format!("queue=\"{queue}\"");
        for gauge in ["lockers_queue_ready_jobs", "lockers_queue_oldest_ready_age_seconds", "lockers_queue_dead_jobs"] {
            assert!(has(gauge, &[&q]).is_some(), "{gauge}{{{q}}} missing in\n{text}");
        }
    }
    // Business counters.
    at_least_one("lockers_deposits_total", &[]);
    at_least_one("lockers_collections_total", &["by=\"receiver\""]);
    at_least_one("lockers_codes_sent_total", &["channel=\"sms\""]);
    at_least_one("lockers_codes_sent_total", &["channel=\"email\""]);
    at_least_one("lockers_door_commands_opened_total", &[]);
    let billed = has("lockers_billed_amount_minor_total", &["currency=\"INR\""]);
    assert_eq!(billed, Some(5000.0), "one started hour at the default price");
    assert_eq!(has("lockers_points", &[]), Some(1.0));
    assert!(has("lockers_points_offline", &[]).is_some());
    // The process.
    let rss = has("process_resident_memory_bytes", &[]).unwrap_or(0.0);
    assert!(rss > 1e6 && rss < 1e9, "resident memory {rss}");
    assert!(has("process_cpu_seconds_total", &[]).is_some_and(|s| s > 0.0));
}

#[tokio::test]
async fn a_worker_serves_its_own_metrics_on_its_address_behind_the_token() {
    let app = TestApp::spawn().await;
    let token = lockers_core::config::Secret::new(METRICS_TOKEN);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let addr =
        lockers_workers::scrape::serve("127.0.0.1:0".parse().unwrap(), app.pool.clone(), Some(token), shutdown.clone())
            .await
            .unwrap();
    let url = format!("http://{addr}/metrics");
    assert_eq!(app.http.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(app.http.get(&url).bearer_auth("wrong-token-wrong-token").send().await.unwrap().status(), 401);
    let text = app.http.get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    for queue in ["otp", "notify", "door", "billing", "sweep"] {
        assert!(sample(&text, "lockers_queue_ready_jobs", &[&format!("queue=\"{queue}\"")]).is_some(), "{text}");
    }
    shutdown.cancel();
}

#[tokio::test]
async fn in_production_without_a_token_the_intake_does_not_serve_metrics() {
    // Production as far as /metrics is concerned (the providers it would
    // demand are beside the point here).
    let database = harness::fresh_database().await;
    let mut config = harness::config(&database, &[]);
    config.app_env = lockers_core::config::AppEnv::Production;
    assert!(config.metrics_token.is_none());
    let pool = lockers_core::db::connect(&config.database_url, 4).await.unwrap();
    let app = TestApp::serve(Arc::new(config), pool, database).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "route_not_found");
    assert_eq!(app.get("/health").await.status(), 200, "the rest is served");
}
