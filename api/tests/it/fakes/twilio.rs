//! A fake Twilio REST endpoint speaking the real protocol: Basic auth, form
//! fields `To`, `From`, `Body`, `201` with a message `sid`. It records every
//! accepted message and can be told to be slow, to fail, or to refuse the
//! next requests with scripted answers (Twilio's error body, `Retry-After`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
pub const AUTH_TOKEN: &str = "fake-twilio-auth-token";
pub const FROM: &str = "+15005550006";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sms {
    pub to: String,
    pub from: String,
    pub body: String,
    pub sid: String,
}

#[derive(Default)]
struct Inner {
    messages: Mutex<Vec<Sms>>,
    requests: AtomicU64,
    request_times: Mutex<Vec<Instant>>,
    delay_ms: AtomicU64,
    /// Non-zero: answer this status instead of accepting.
    fail_with: AtomicU16,
    /// Answers given, in order, before `fail_with` or accepting applies again.
    script: Mutex<VecDeque<Refusal>>,
}

/// One scripted refusal: a status, an optional `Retry-After`, and Twilio's
/// error body (`code`, `message`, `more_info`, `status`).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub retry_after: Option<String>,
    pub code: u32,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, code: u32, message: &str) -> Refusal {
        Refusal { status, retry_after: None, code, message: message.to_owned() }
    }

    pub fn retry_after(mut self, value: &str) -> Refusal {
        self.retry_after = Some(value.to_owned());
        self
    }
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(rename = "To")]
    to: String,
    #[serde(rename = "From")]
    from: String,
    #[serde(rename = "Body")]
    body: String,
}

impl FakeTwilio {
    pub async fn start() -> FakeTwilio {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(create_message))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind fake twilio");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeTwilio { addr, inner }
    }

    /// Configuration flags that point the app at this server.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--sms-provider=twilio".into(),
            format!("--twilio-api-base=http://{}", self.addr),
            format!("--twilio-account-sid={ACCOUNT_SID}"),
            format!("--twilio-auth-token={AUTH_TOKEN}"),
            format!("--twilio-from={FROM}"),
        ]
    }

    pub fn messages(&self) -> Vec<Sms> {
        self.inner.messages.lock().expect("lock").clone()
    }

    /// When each request arrived (before any configured delay), in order.
    pub fn request_times(&self) -> Vec<Instant> {
        self.inner.request_times.lock().expect("lock").clone()
    }

    /// Every request received, accepted or not.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.inner.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Answer the next requests with these refusals, one each, in order.
    pub fn refuse_next(&self, refusals: impl IntoIterator<Item = Refusal>) {
        self.inner.script.lock().expect("lock").extend(refusals);
    }

    /// Answer every request with `status` (0: accept again).
    pub fn fail_with(&self, status: u16) {
        self.inner.fail_with.store(status, Ordering::SeqCst);
    }
}

async fn create_message(
    State(inner): State<Arc<Inner>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<MessageForm>,
) -> Response {
    inner.request_times.lock().expect("lock").push(Instant::now());
    inner.requests.fetch_add(1, Ordering::SeqCst);
    let delay = inner.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}")));
    let authorized = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    if sid != ACCOUNT_SID || !authorized {
        let body = json!({ "code": 20003, "message": "Authenticate", "status": 401 });
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let scripted = inner.script.lock().expect("lock").pop_front();
    if let Some(refusal) = scripted {
        let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({
            "code": refusal.code,
            "message": refusal.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", refusal.code),
            "status": refusal.status,
        });
        let mut response = (status, Json(body)).into_response();
        if let Some(value) = refusal.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let fail = inner.fail_with.load(Ordering::SeqCst);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(json!({ "code": 21211, "message": "refused by the fake", "status": fail })))
            .into_response();
    }
    let message_sid = format!("SM{}", Uuid::new_v4().simple());
    inner.messages.lock().expect("lock").push(Sms {
        to: form.to.clone(),
        from: form.from.clone(),
        body: form.body.clone(),
        sid: message_sid.clone(),
    });
    let body = json!({ "sid": message_sid, "account_sid": sid, "to": form.to, "from": form.from, "body": form.body, "status": "queued" });
    (StatusCode::CREATED, Json(body)).into_response()
}
