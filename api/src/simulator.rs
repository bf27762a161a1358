//! A locker point's door controller, simulated: speaks door controller protocol
//! v1 the way a real one does (bearer token, `Idempotency-Key` deduplication,
//! `door_closed` reported back after each open, heartbeats), with failures on
//! demand (500s, answers that never come, latency, a jammed door). Behind
//! `lockers-admin simulate-controller`, for demos, end-to-end tests and
//! benchmarks; the integration tests' fake controller is built on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// Failures injected into the answers to opens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Share of opens answered `500` without pulsing (0 to 1).
    pub fail_rate: f64,
    /// Share of opens that pulse the door, then never answer (0 to 1): the
    /// backend must resend, and the resend must not pulse again.
    pub timeout_rate: f64,
    /// Added before each answer to an open (after the pulse).
    pub latency: Duration,
    /// Every open answers `409 {"status": "jammed"}`.
    pub jammed: bool,
}

/// One open request as received (recorded when the controller is told to).
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub door_no: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

/// Where events go: the backend's `POST /api/v1/controller/events`.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The backend's base URL, e.g. `http://127.0.0.1:8080`.
    pub api: String,
}

pub struct Controller {
    token: Mutex<String>,
    faults: Mutex<Faults>,
    backend: Mutex<Option<Backend>>,
    /// Delay between an open and its `door_closed` report.
    close_after: Duration,
    /// Idempotency keys seen, with the door each opened.
    seen: Mutex<HashMap<String, i64>>,
    /// Pulses per command id (from the body): more than one is a double open.
    pulses: Mutex<HashMap<Uuid, u32>>,
    /// Every open request, when recording.
    requests: Mutex<Option<Vec<Request>>>,
    client: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Deserialize)]
struct OpenBody {
    command_id: Uuid,
    reason: String,
    pulse_ms: u32,
}

impl Controller {
    /// A controller accepting `token`, reporting to `backend` (if any).
    pub fn new(
        token: String,
        backend: Option<Backend>,
        faults: Faults,
        close_after: Duration,
        record: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            token: Mutex::new(token),
            faults: Mutex::new(faults),
            backend: Mutex::new(backend),
            close_after,
            seen: Mutex::new(HashMap::new()),
            pulses: Mutex::new(HashMap::new()),
            requests: Mutex::new(record.then(Vec::new)),
            client: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default(),
        })
    }

    /// Protocol v1's controller side.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().route("/v1/doors/{door_no}/open", post(open)).with_state(self.clone())
    }

    pub fn set_token(&self, token: String) {
        *lock(&self.token) = token;
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    pub fn set_backend(&self, backend: Option<Backend>) {
        *lock(&self.backend) = backend;
    }

    /// How many times the door was pulsed for `command_id`.
    pub fn pulses(&self, command_id: Uuid) -> u32 {
        lock(&self.pulses).get(&command_id).copied().unwrap_or(0)
    }

    /// Pulses for every command, by command id.
    pub fn all_pulses(&self) -> HashMap<Uuid, u32> {
        lock(&self.pulses).clone()
    }

    /// Every open request received so far (empty unless recording).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.requests).clone().unwrap_or_default()
    }

    /// Posts one event to the backend; its status (none without a backend).
    pub async fn report(
        &self,
        event: &str,
        door_no: Option<i64>,
        command_id: Option<Uuid>,
    ) -> anyhow::Result<StatusCode> {
        let backend = lock(&self.backend).clone().context("no backend to report to")?;
        let token = lock(&self.token).clone();
        let response = self
            .client
            .post(format!("{}/api/v1/controller/events", backend.api.trim_end_matches('/')))
            .bearer_auth(token)
            .json(&json!({ "door_no": door_no, "event": event, "command_id": command_id }))
            .send()
            .await
            .with_context(|| format!("Failed to report {event} to {}", backend.api))?;
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        Ok(status)
    }

    /// Sends a heartbeat every `every`, until the task is dropped.
    pub fn spawn_heartbeats(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match this.report("heartbeat", None, None).await {
                    Ok(s) if s.is_success() => {}
                    Ok(s) => tracing::warn!(status = %s, "heartbeat refused"),
                    Err(e) => tracing::warn!(error = %e, "heartbeat not delivered"),
                }
            }
        })
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn open(
    State(this): State<Arc<Controller>>,
    Path(door_no): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let authorization = text(header::AUTHORIZATION);
    let key = text(header::HeaderName::from_static("idempotency-key"));
    if let Some(log) = lock(&this.requests).as_mut() {
        log.push(Request {
            path: format!("/v1/doors/{door_no}/open"),
            door_no: door_no.clone(),
            authorization: authorization.clone(),
            idempotency_key: key.clone(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
    }
    let expected = format!("Bearer {}", lock(&this.token));
    if authorization.as_deref() != Some(expected.as_str()) {
        return answer(StatusCode::UNAUTHORIZED, json!({ "status": "unauthorized" }));
    }
    let Ok(door) = door_no.parse::<i64>() else {
        return answer(StatusCode::NOT_FOUND, json!({ "status": "no_such_door" }));
    };
    let Ok(open) = serde_json::from_slice::<OpenBody>(&body) else {
        return answer(StatusCode::BAD_REQUEST, json!({ "status": "bad_request" }));
    };
    let Some(key) = key.filter(|k| *k == open.command_id.to_string()) else {
        return answer(StatusCode::BAD_REQUEST, json!({ "status": "idempotency_key_must_be_the_command_id" }));
    };
    let faults = *lock(&this.faults);
    if rand::random::<f64>() < faults.fail_rate {
        return answer(StatusCode::INTERNAL_SERVER_ERROR, json!({ "status": "error" }));
    }
    if faults.jammed {
        return answer(StatusCode::CONFLICT, json!({ "status": "jammed" }));
    }
    let first = lock(&this.seen).insert(key, door).is_none();
    if first {
        *lock(&this.pulses).entry(open.command_id).or_default() += 1;
        tracing::info!(door, command_id = %open.command_id, reason = open.reason, pulse_ms = open.pulse_ms, "door pulsed");
        let (reporter, command_id) = (this.clone(), open.command_id);
        tokio::spawn(async move {
            tokio::time::sleep(reporter.close_after).await;
            match reporter.report("door_closed", Some(door), Some(command_id)).await {
                Ok(s) if s.is_success() => tracing::info!(door, %command_id, "door_closed reported"),
                Ok(s) => tracing::warn!(door, %command_id, status = %s, "door_closed refused"),
                Err(e) => tracing::warn!(door, %command_id, error = %e, "door_closed not delivered"),
            }
        });
    }
    if rand::random::<f64>() < faults.timeout_rate {
        // The door opened; the answer is lost. The backend's resend gets a 200 without a pulse.
        std::future::pending::<()>().await;
    }
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    answer(StatusCode::OK, json!({ "command_id": open.command_id, "status": "opened" }))
}

/// `lockers-admin simulate-controller`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// Address to listen on (port 0 picks one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:9100")]
    pub listen: SocketAddr,
    /// The backend's base URL, for events (`{api}/api/v1/controller/events`).
    #[arg(long)]
    pub api: String,
    /// The point's controller token (as created or rotated by an admin). It
    /// may begin with `-` (URL-safe base64), so `--token -K...` is a value.
    #[arg(long, env = "CONTROLLER_TOKEN", hide_env_values = true, allow_hyphen_values = true)]
    pub token: String,
    /// The point this simulator stands for (shown in its log; the token is what identifies it).
    #[arg(long)]
    pub point_id: Option<Uuid>,
    /// Share of opens answered 500 without pulsing (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of opens that pulse, then never answer (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Milliseconds added before each answer to an open.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Milliseconds between an open and its `door_closed` report.
    #[arg(long, default_value_t = 500)]
    pub close_after_ms: u64,
    /// Seconds between heartbeats (0: none).
    #[arg(long, default_value_t = 20)]
    pub heartbeat_secs: u64,
}

/// Serves until interrupted.
pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    for (name, rate) in [("--fail-rate", args.fail_rate), ("--timeout-rate", args.timeout_rate)] {
        anyhow::ensure!((0.0..=1.0).contains(&rate), "{name} must be between 0 and 1");
    }
    let faults = Faults {
        fail_rate: args.fail_rate,
        timeout_rate: args.timeout_rate,
        latency: Duration::from_millis(args.latency_ms),
        jammed: false,
    };
    let backend = Backend { api: args.api.clone() };
    let controller =
        Controller::new(args.token, Some(backend), faults, Duration::from_millis(args.close_after_ms), false);
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("Failed to bind {}", args.listen))?;
    let addr = listener.local_addr().context("Failed to read the bound address")?;
    // The first line of output: scripts and tests read the address from it.
    println!("simulated controller listening on http://{addr}");
    tracing::info!(%addr, point_id = ?args.point_id, api = %args.api, ?faults, "simulated controller started");
    let _heartbeats =
        (args.heartbeat_secs > 0).then(|| controller.spawn_heartbeats(Duration::from_secs(args.heartbeat_secs)));
    axum::serve(listener, controller.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("simulated controller failed")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::SimulatorArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulatorArgs,
    }

    #[test]
    fn a_token_beginning_with_a_dash_is_taken_as_the_token() {
        let cli = Cli::try_parse_from(["sim", "--api", "http://127.0.0.1:1", "--token", "-Kx_9-abc"]).unwrap();
        assert_eq!(cli.args.token, "-Kx_9-abc");
    }
}
