//! Door controller protocol v1 over HTTP(S), per locker point:
//! `POST {controller_url}/v1/doors/{door_no}/open` with the point's derived
//! token as bearer and the command id as `Idempotency-Key`, so a resend after a
//! timeout or a crash never pulses the door twice.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use lockers_core::config::Config;
use lockers_core::exchange::doors::{Outbound, PULSE_MS};
use lockers_core::places::{self, ControllerKey};
use reqwest::StatusCode;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use serde_json::json;

use super::{DoorDriver, DoorError};

/// The `http` driver: one client (connection pool, trusted roots) for every point.
pub struct HttpDoors {
    client: reqwest::Client,
    key: ControllerKey,
    /// Production without `CONTROLLER_ALLOW_PRIVATE_URLS`: internal addresses are refused.
    public_only: bool,
}

/// The most of a controller's answer that is read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl HttpDoors {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let public_only = !places::internal_controllers_allowed(config);
        let mut builder = reqwest::Client::builder()
            .timeout(config.door_attempt_timeout)
            .connect_timeout(config.door_attempt_timeout)
            // A redirect could lead anywhere, including inside our own network.
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would see the controller's address, not us.
            .no_proxy()
            .user_agent(concat!("lockers-door-worker/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &config.controller_ca_file {
            let pem =
                std::fs::read(path).with_context(|| format!("Failed to read CONTROLLER_CA_FILE {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("CONTROLLER_CA_FILE {} is not a PEM bundle", path.display()))?;
            anyhow::ensure!(!certs.is_empty(), "CONTROLLER_CA_FILE {} holds no certificate", path.display());
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if public_only {
            // Checked after resolution, on the addresses actually connected to.
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let client = builder.build().context("Failed to build the door controller HTTP client")?;
        Ok(Self { client, key: ControllerKey::from_config(config), public_only })
    }
}

#[derive(Deserialize)]
struct Answer {
    status: String,
}

#[async_trait]
impl DoorDriver for HttpDoors {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn open(&self, command: &Outbound) -> Result<(), DoorError> {
        let base = command
            .controller_url
            .as_deref()
            .ok_or_else(|| DoorError::Permanent("the locker point has no controller_url".into()))?;
        let url = reqwest::Url::parse(&format!("{base}/v1/doors/{}/open", command.door_no))
            .map_err(|e| DoorError::Permanent(format!("bad controller_url: {e}")))?;
        if self.public_only && literal_internal_host(&url) {
            return Err(DoorError::Permanent(format!("{INTERNAL}: {}", url.host_str().unwrap_or(""))));
        }
        let token = self.key.token(command.point_id, command.token_generation);
        let body = json!({
            "command_id": command.command_id,
            "reason": command.reason.as_str(),
            "pulse_ms": PULSE_MS,
        });
        let sent = self
            .client
            .post(url)
            .bearer_auth(token.expose())
            .header("Idempotency-Key", command.command_id.to_string())
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(classify(&e)),
        };
        let status = response.status();
        // Only the start of an answer matters; a controller cannot make us read more.
        let mut body = Vec::new();
        let mut response = response;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() < MAX_ANSWER_BYTES => body.extend_from_slice(&chunk),
                Ok(_) => break,
                Err(e) => return Err(classify(&e)),
            }
        }
        body.truncate(MAX_ANSWER_BYTES);
        let text = String::from_utf8_lossy(&body).into_owned();
        let excerpt: String = text.chars().take(200).collect();
        match status {
            StatusCode::OK => match serde_json::from_str::<Answer>(&text) {
                Ok(answer) if answer.status == "opened" => Ok(()),
                _ => Err(DoorError::Permanent(format!("controller answered 200 without opening: {excerpt}"))),
            },
            s if s.is_server_error() => Err(DoorError::Transient(format!("controller answered {s}: {excerpt}"))),
            // 409 jammed, a refused token, anything else: sending again will not help.
            s => Err(DoorError::Permanent(format!("controller answered {s}: {excerpt}"))),
        }
    }

    fn reports_closed(&self) -> bool {
        false
    }
}

const INTERNAL: &str = "controller address is internal (set CONTROLLER_ALLOW_PRIVATE_URLS=true to allow)";

/// A request that never got an answer: worth another try, unless the address
/// was refused as internal (which no retry changes).
fn classify(e: &reqwest::Error) -> DoorError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<InternalAddress>().is_some() {
            return DoorError::Permanent(INTERNAL.into());
        }
        source = err.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    DoorError::Transient(format!("{what}: {}", chain(e)))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// An IP literal host (which skips resolution) naming an internal address.
fn literal_internal_host(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>().is_ok_and(places::is_internal_ip)
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to an internal address")]
struct InternalAddress(String);

/// Resolves like the system does, then refuses a name with any internal
/// address (a public name pointed at 10.0.0.1 is still SSRF).
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.iter().any(|a| places::is_internal_ip(a.ip())) {
                return Err(Box::new(InternalAddress(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
