//! Outbound channels: SMS and email providers behind one small interface each,
//! chosen by configuration.

mod console;
pub mod doors;
mod smtp;
mod twilio;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lockers_core::config::{Config, DoorDriver, EmailProvider, SmsProvider};

pub use console::{ConsoleEmail, ConsoleSms};
pub use smtp::SmtpEmail;
pub use twilio::TwilioSms;

/// What a provider said about one message.
#[derive(Debug)]
pub enum SendError {
    /// Worth trying again later: nothing reached the provider (connect
    /// refused or timed out, a connection cut during the TLS handshake), or it
    /// answered 429, 5xx, 4xx SMTP.
    Transient(String),
    /// Worth trying again, and the provider said when: not before this wait
    /// (Twilio's `Retry-After` on a 429 or 5xx).
    RetryAfter(String, Duration),
    /// Will never work until someone changes something (bad number, rejected
    /// credentials, a relay certificate we do not trust).
    Permanent(String),
    /// The request reached the provider and then the answer never came (a
    /// timeout or a broken connection after it was sent): the message may have
    /// gone out. Never retried, so never sent twice.
    Unknown(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient(m) | SendError::RetryAfter(m, _) => write!(f, "transient: {m}"),
            SendError::Permanent(m) => write!(f, "permanent: {m}"),
            SendError::Unknown(m) => write!(f, "unknown: {m}"),
        }
    }
}

/// A delivered message: the provider's id for it, when it gives one.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub provider_message_id: Option<String>,
}

#[async_trait]
pub trait SmsSender: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, to: &str, body: &str) -> Result<Receipt, SendError>;
}

/// An email as the outbox holds it.
#[derive(Debug, Clone, Copy)]
pub struct Email<'a> {
    pub subject: &'a str,
    pub text: &'a str,
    /// The HTML alternative to `text`; emails queued before templates have none.
    pub html: Option<&'a str>,
}

#[async_trait]
pub trait EmailSender: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, to: &str, email: &Email<'_>) -> Result<Receipt, SendError>;
}

/// The providers a configuration asks for.
#[derive(Clone)]
pub struct Providers {
    pub sms: Arc<dyn SmsSender>,
    pub email: Arc<dyn EmailSender>,
    pub doors: Arc<dyn doors::DoorDriver>,
}

impl Providers {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let sms: Arc<dyn SmsSender> = match config.sms_provider {
            SmsProvider::Console => Arc::new(ConsoleSms),
            SmsProvider::Twilio => Arc::new(TwilioSms::from_config(config)?),
        };
        let email: Arc<dyn EmailSender> = match config.email_provider {
            EmailProvider::Console => Arc::new(ConsoleEmail),
            EmailProvider::Smtp => Arc::new(SmtpEmail::from_config(config)?),
        };
        let doors: Arc<dyn doors::DoorDriver> = match config.door_driver {
            DoorDriver::Simulated => Arc::new(doors::SimulatedDoors),
            DoorDriver::Http => Arc::new(doors::HttpDoors::from_config(config)?),
        };
        Ok(Self { sms, email, doors })
    }
}
