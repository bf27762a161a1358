//! A fake Twilio REST endpoint speaking the real protocol: Basic auth, form
//! fields `To`, `From`, `Body`, `201` with a message `sid`. It records every
//! accepted message and can be told to be slow or to fail.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
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
) -> (StatusCode, Json<Value>) {
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
        return (StatusCode::UNAUTHORIZED, Json(json!({ "code": 20003, "message": "Authenticate", "status": 401 })));
    }
    let fail = inner.fail_with.load(Ordering::SeqCst);
    if fail != 0 {
        let status = StatusCode::from_u16(fail).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(json!({ "code": 21211, "message": "refused by the fake", "status": fail })));
    }
    let message_sid = format!("SM{}", Uuid::new_v4().simple());
    inner.messages.lock().expect("lock").push(Sms {
        to: form.to.clone(),
        from: form.from.clone(),
        body: form.body.clone(),
        sid: message_sid.clone(),
    });
    let body = json!({ "sid": message_sid, "account_sid": sid, "to": form.to, "from": form.from, "body": form.body, "status": "queued" });
    (StatusCode::CREATED, Json(body))
}
