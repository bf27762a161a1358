//! SMS through Twilio's REST API:
//! `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, HTTP Basic auth,
//! form fields `To`, `From`, `Body`; `201` carries the message `sid`.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use lockers_core::config::{Config, Secret};
use serde::Deserialize;

use super::{Receipt, SendError, SmsSender};

pub struct TwilioSms {
    http: reqwest::Client,
    url: String,
    account_sid: String,
    auth_token: Secret,
    from: String,
    /// Bound on one whole call, named in the error when it runs out.
    timeout: Duration,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

impl TwilioSms {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let account_sid = config.twilio_account_sid.clone().context("TWILIO_ACCOUNT_SID is required")?;
        let auth_token = config.twilio_auth_token.clone().context("TWILIO_AUTH_TOKEN is required")?;
        let from = config.twilio_from.clone().context("TWILIO_FROM is required")?;
        let base = config.twilio_api_base.trim_end_matches('/');
        let http = reqwest::Client::builder()
            // The whole call (connect, request, response body) is bounded, so a
            // Twilio that stops answering fails the attempt: retried when the
            // connection was never made, else left unknown (never sent twice).
            .timeout(config.twilio_timeout)
            .connect_timeout(config.twilio_timeout.min(Duration::from_secs(5)))
            .build()
            .context("Failed to build the HTTP client")?;
        Ok(Self {
            url: format!("{base}/2010-04-01/Accounts/{account_sid}/Messages.json"),
            http,
            account_sid,
            auth_token,
            from,
            timeout: config.twilio_timeout,
        })
    }
}

#[async_trait]
impl SmsSender for TwilioSms {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, to: &str, body: &str) -> Result<Receipt, SendError> {
        let response = self
            .http
            .post(&self.url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(&[("To", to), ("From", self.from.as_str()), ("Body", body)])
            .send()
            .await
            .map_err(|e| {
                // Refused, unreachable, connect timeout, TLS handshake: the
                // request never left, so another attempt cannot send twice.
                if e.is_connect() || e.is_builder() {
                    SendError::Transient(format!("could not reach Twilio: {}", e.without_url()))
                } else if e.is_timeout() {
                    SendError::Unknown(format!(
                        "Twilio gave no answer within {} s after the request was sent",
                        self.timeout.as_secs()
                    ))
                } else {
                    SendError::Unknown(format!("the request failed after it was sent: {}", e.without_url()))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            // Twilio accepted the message: an unreadable body only loses its sid.
            return match response.json::<Created>().await {
                Ok(created) => Ok(Receipt { provider_message_id: Some(created.sid) }),
                Err(error) => {
                    tracing::warn!(error = %error.without_url(), "Twilio accepted the message; its answer was unreadable");
                    Ok(Receipt { provider_message_id: None })
                }
            };
        }
        let detail = format!("Twilio answered {status}");
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::Transient(detail))
        } else {
            Err(SendError::Permanent(detail))
        }
    }
}
