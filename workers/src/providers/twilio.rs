//! SMS through Twilio's REST API:
//! `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, HTTP Basic auth,
//! form fields `To`, `From`, `Body`; `201` carries the message `sid`.
//! 429 and 5xx are worth another attempt, after the `Retry-After` wait when
//! given; any other refusal is final, with Twilio's error code and message.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lockers_core::config::{Config, Secret};
use reqwest::header;
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
        let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        // The error body names the reason (`{"code": 21211, "message": ...}`);
        // an unreadable one leaves the status alone to say it.
        let body = response.text().await.unwrap_or_default();
        let detail = match serde_json::from_str::<Refusal>(&body) {
            Ok(refusal) => format!("Twilio answered {status}: {refusal}"),
            Err(_) => format!("Twilio answered {status}"),
        };
        if status.as_u16() == 429 || status.is_server_error() {
            match retry_after.as_deref().and_then(|v| wait_asked(v, Utc::now())) {
                Some(wait) => Err(SendError::RetryAfter(format!("{detail} (Retry-After: {} s)", wait.as_secs()), wait)),
                None => Err(SendError::Transient(detail)),
            }
        } else {
            Err(SendError::Permanent(detail))
        }
    }
}

/// Twilio's error body; both fields are kept in the outbox's `last_error`.
#[derive(Deserialize)]
struct Refusal {
    code: Option<i64>,
    message: Option<String>,
}

/// The longest provider message kept: enough for any Twilio error text, not
/// enough for a misbehaving server to fill the outbox row.
const MESSAGE_LIMIT: usize = 300;

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message: String = self.message.as_deref().unwrap_or("(no message)").chars().take(MESSAGE_LIMIT).collect();
        match self.code {
            Some(code) => write!(f, "error {code}: {message}"),
            None => f.write_str(&message),
        }
    }
}

/// The wait a `Retry-After` value asks for as of `now`: whole seconds, or an
/// HTTP date (a date already past asks for none). `None` when unreadable.
fn wait_asked(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is RFC 2822 with `GMT`.
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(wait_asked("2", now), Some(Duration::from_secs(2)));
        assert_eq!(wait_asked(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(wait_asked("Sun, 22 Nov 2026 10:00:30 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(wait_asked("Sun, 22 Nov 2026 09:00:00 GMT", now), Some(Duration::ZERO), "a date past");
        assert_eq!(wait_asked("soon", now), None);
        assert_eq!(wait_asked("-5", now), None);
    }

    #[test]
    fn the_refusal_keeps_twilios_code_and_message() {
        let refusal: Refusal =
            serde_json::from_str(r#"{"code": 21211, "message": "The 'To' number is not valid.", "status": 400}"#)
                .unwrap();
        assert_eq!(refusal.to_string(), "error 21211: The 'To' number is not valid.");
        let long = Refusal { code: None, message: Some("x".repeat(1000)) };
        assert_eq!(long.to_string().len(), MESSAGE_LIMIT);
    }
}
