//! Email over SMTP with lettre: STARTTLS, implicit TLS or plain by
//! configuration; every message has a text and an HTML part.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use lockers_core::config::{Config, SmtpTls};

use super::{EmailSender, Receipt, SendError};

pub struct SmtpEmail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Bound on one whole delivery (connect, greeting, every command, data).
    timeout: Duration,
}

impl SmtpEmail {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let host = config.smtp_host.as_deref().context("SMTP_HOST is required")?;
        let from: Mailbox = config
            .email_from
            .as_deref()
            .context("EMAIL_FROM is required")?
            .parse()
            .context("EMAIL_FROM is not a valid mailbox")?;
        let mut builder = match config.smtp_tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .context("SMTP_HOST is not a valid host for STARTTLS")?,
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).context("SMTP_HOST is not a valid host for TLS")?
            }
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        // lettre's own timeout bounds only the TCP connect; `send` bounds the rest.
        builder = builder.port(config.smtp_port).timeout(Some(config.smtp_timeout));
        if let Some(user) = &config.smtp_username {
            let password = config.smtp_password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self { transport: builder.build(), from, timeout: config.smtp_timeout })
    }
}

/// The text as HTML: escaped, one paragraph per line.
fn html_of(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let paragraphs: Vec<String> = escaped.lines().map(|l| format!("<p>{l}</p>")).collect();
    format!("<!doctype html><html><body>{}</body></html>", paragraphs.join(""))
}

#[async_trait]
impl EmailSender for SmtpEmail {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<Receipt, SendError> {
        let to: Mailbox = to.parse().map_err(|_| SendError::Permanent("invalid recipient address".into()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(body.to_owned(), html_of(body)))
            .map_err(|e| SendError::Permanent(format!("message could not be built: {e}")))?;
        // A server that accepts the connection and then stays silent would
        // otherwise hold this job (and its worker slot) forever. Without the
        // `pool` feature each send owns its connection, so dropping the future
        // on timeout closes it.
        let Ok(sent) = tokio::time::timeout(self.timeout, self.transport.send(message)).await else {
            return Err(SendError::Transient(format!("SMTP gave no answer within {} s", self.timeout.as_secs())));
        };
        match sent {
            Ok(response) => {
                Ok(Receipt { provider_message_id: response.message().next().map(|line| line.trim().to_owned()) })
            }
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP refused: {e}"))),
            Err(e) => Err(SendError::Transient(format!("SMTP failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_of("a<b>&\"c\"\nd"),
            "<!doctype html><html><body><p>a&lt;b&gt;&amp;&quot;c&quot;</p><p>d</p></body></html>"
        );
    }
}
