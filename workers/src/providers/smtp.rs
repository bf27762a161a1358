//! Email over SMTP with lettre: STARTTLS, implicit TLS or plain by
//! configuration; every message has a text and an HTML part.
//!
//! The session is driven step by step (lettre's `AsyncSmtpConnection`) rather
//! than by `AsyncSmtpTransport::send`, so a failure can be placed: up to the
//! end of `DATA`'s `354` nothing of the message reached the server and the
//! attempt may be repeated; once the message content is on its way, a silence
//! or a broken connection leaves it unknown (the server may have queued it).

use std::error::Error as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lockers_core::config::{Config, SmtpTls};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::time::Instant;

use super::{Email, EmailSender, Receipt, SendError};

pub struct SmtpEmail {
    host: String,
    port: u16,
    /// `Some` for implicit TLS and STARTTLS.
    tls: Option<TlsParameters>,
    starttls: bool,
    credentials: Option<Credentials>,
    hello: ClientId,
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
        let tls = match config.smtp_tls {
            SmtpTls::Starttls | SmtpTls::Tls => Some(tls_parameters(host, config.smtp_ca_file.as_deref())?),
            SmtpTls::None => None,
        };
        let credentials = config.smtp_username.as_ref().map(|user| {
            let password = config.smtp_password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
            Credentials::new(user.clone(), password)
        });
        Ok(Self {
            host: host.to_owned(),
            port: config.smtp_port,
            tls,
            starttls: config.smtp_tls == SmtpTls::Starttls,
            credentials,
            hello: ClientId::default(),
            from,
            timeout: config.smtp_timeout,
        })
    }

    /// Connects, reads the greeting, says EHLO, upgrades (STARTTLS) and logs
    /// in: nothing of any message has been sent yet.
    async fn open(&self) -> Result<AsyncSmtpConnection, SendError> {
        let implicit = if self.starttls { None } else { self.tls.clone() };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| self.session_failed("connecting", &e))?;
        if self.starttls {
            let Some(tls) = self.tls.clone() else {
                return Err(SendError::Permanent("STARTTLS without TLS parameters".into()));
            };
            conn.starttls(tls, &self.hello).await.map_err(|e| self.session_failed("STARTTLS", &e))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await.map_err(|e| login_failed(&e))?;
        }
        Ok(conn)
    }

    /// A failure while connecting or upgrading. A certificate we do not
    /// accept, or a relay that does not speak TLS as configured, is
    /// permanent: no retry can change it until an operator does (trusts the
    /// relay's CA, fixes `SMTP_HOST` or `SMTP_TLS`, or the relay's
    /// certificate), and retrying every queued message meanwhile only
    /// repeats the failure. A relay without STARTTLS is never written to in
    /// clear.
    fn session_failed(&self, step: &str, e: &smtp::Error) -> SendError {
        if let Some(tls) = rustls_error(e) {
            return SendError::Permanent(tls_refusal(tls, &self.host));
        }
        if e.is_client() {
            // lettre's own refusals before any command: STARTTLS not offered.
            return SendError::Permanent(format!("SMTP session impossible ({step}): {}", detail(e)));
        }
        before_message(step, e)
    }
}

/// TLS parameters for `host`: the public roots, plus the CAs in `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&Path>) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("Failed to read SMTP_CA_FILE {}", path.display()))?;
        let certs: Vec<CertificateDer<'_>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .with_context(|| format!("SMTP_CA_FILE {} is not a PEM bundle", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "SMTP_CA_FILE {} holds no certificate", path.display());
        for cert in certs {
            let cert = Certificate::from_der(cert.to_vec())
                .with_context(|| format!("SMTP_CA_FILE {} holds a certificate that cannot be read", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().with_context(|| match ca_file {
        Some(path) => format!("SMTP_HOST is not a valid TLS host name, or SMTP_CA_FILE {} is unusable", path.display()),
        None => "SMTP_HOST is not a valid TLS host name".to_owned(),
    })
}

/// The TLS library's own error behind a failed handshake, if that is what
/// failed (tokio-rustls wraps it in an `io::Error`).
fn rustls_error(e: &smtp::Error) -> Option<&rustls::Error> {
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref);
        if let Some(tls) = inner.and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return Some(tls);
        }
        source = err.source();
    }
    None
}

/// What the outbox row says about a TLS handshake we broke off or that failed.
fn tls_refusal(e: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as Cert;
    match e {
        rustls::Error::InvalidCertificate(Cert::UnknownIssuer) => {
            "TLS: certificate not trusted (issuer unknown; SMTP_CA_FILE can add the relay's CA)".to_owned()
        }
        rustls::Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            format!("TLS: certificate not valid for the host name {host}")
        }
        rustls::Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "TLS: certificate expired".to_owned()
        }
        rustls::Error::InvalidCertificate(other) => format!("TLS: certificate rejected ({other:?})"),
        other => format!("TLS handshake failed: {other}"),
    }
}

/// A failed login. Refused credentials (5xx, e.g. `535`) are permanent: they
/// stay wrong until an operator changes `SMTP_USERNAME`/`SMTP_PASSWORD`, and
/// retrying every queued message with them would look like password guessing
/// to the relay (many lock the account). A temporary refusal (`454`) is
/// retried within the queue's attempts.
fn login_failed(e: &smtp::Error) -> SendError {
    match e.status() {
        Some(code) if e.is_permanent() => {
            SendError::Permanent(format!("SMTP authentication rejected ({code} {})", detail(e)))
        }
        Some(code) => SendError::Transient(format!("SMTP authentication failed for now ({code} {})", detail(e))),
        // No PLAIN or LOGIN on offer: no retry brings them.
        None if e.is_client() => SendError::Permanent(format!("SMTP authentication impossible: {}", detail(e))),
        None => before_message("authentication", e),
    }
}

/// The server's words (or lettre's) behind an error, without lettre's prefix.
fn detail(e: &smtp::Error) -> String {
    e.source().map_or_else(|| e.to_string(), ToString::to_string).trim().to_owned()
}

/// MAIL, RCPT and DATA (up to the server's `354`): still nothing of the
/// message itself on the wire.
async fn envelope(conn: &mut AsyncSmtpConnection, envelope: &Envelope, email: &[u8]) -> Result<(), SendError> {
    let mut options = Vec::new();
    let addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses.into_iter().any(|a| !AsRef::<str>::as_ref(a).is_ascii()) {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Permanent("the address needs SMTPUTF8, which the server lacks".into()));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !email.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::Permanent("the message needs 8BITMIME, which the server lacks".into()));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options)).await.map_err(|e| before_message("MAIL", &e))?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await.map_err(|e| before_message("RCPT", &e))?;
    }
    conn.command(Data).await.map_err(|e| before_message("DATA", &e))?;
    Ok(())
}

/// A failure before the message content was sent: a refusal (5xx) is
/// permanent, anything else may be tried again.
fn before_message(step: &str, e: &smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(format!("SMTP refused ({step}): {e}"))
    } else {
        SendError::Transient(format!("SMTP failed before the message was sent ({step}): {e}"))
    }
}

/// The message: multipart/alternative (text, then HTML, the form mail
/// readers prefer) when the email has an HTML part, plain text otherwise.
fn build(from: &Mailbox, to: &str, email: &Email<'_>) -> Result<Message, SendError> {
    let to: Mailbox = to.parse().map_err(|_| SendError::Permanent("invalid recipient address".into()))?;
    let builder = Message::builder().from(from.clone()).to(to).subject(email.subject);
    let built = match email.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(email.text.to_owned(), html.to_owned())),
        None => builder.singlepart(SinglePart::plain(email.text.to_owned())),
    };
    built.map_err(|e| SendError::Permanent(format!("message could not be built: {e}")))
}

#[async_trait]
impl EmailSender for SmtpEmail {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, to: &str, email: &Email<'_>) -> Result<Receipt, SendError> {
        let message = build(&self.from, to, email)?;
        let email = message.formatted();
        // A server that accepts the connection and then stays silent would
        // otherwise hold this job (and its worker slot) forever. Each send owns
        // its connection, so dropping the future on timeout closes it.
        let deadline = Instant::now() + self.timeout;
        let silent = || format!("SMTP gave no answer within {} s", self.timeout.as_secs());
        let mut conn =
            tokio::time::timeout_at(deadline, self.open()).await.map_err(|_| SendError::Transient(silent()))??;
        tokio::time::timeout_at(deadline, envelope(&mut conn, message.envelope(), &email))
            .await
            .map_err(|_| SendError::Transient(silent()))??;
        // The content goes out now: from here the server may have the message
        // queued whatever we hear back, unless it explicitly refuses it.
        let response = match tokio::time::timeout_at(deadline, conn.message(&email)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.is_permanent() => return Err(SendError::Permanent(format!("SMTP refused: {e}"))),
            // A 4xx answer to the data: the server did not take it.
            Ok(Err(e)) if e.is_transient() => return Err(SendError::Transient(format!("SMTP failed: {e}"))),
            Ok(Err(e)) => return Err(SendError::Unknown(format!("SMTP failed after the message was sent: {e}"))),
            Err(_) => return Err(SendError::Unknown(format!("{} after the message was sent", silent()))),
        };
        // QUIT is a courtesy: the message is already accepted.
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.quit()).await;
        Ok(Receipt { provider_message_id: response.message().next().map(|line| line.trim().to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> Mailbox {
        "Lockers <no-reply@lockers.test>".parse().unwrap()
    }

    #[test]
    fn an_html_part_makes_the_message_multipart_alternative() {
        let email = Email { subject: "Hi", text: "plain words", html: Some("<p>rich words</p>") };
        let sent = String::from_utf8(build(&from(), "a@example.com", &email).unwrap().formatted()).unwrap();
        assert!(sent.contains("multipart/alternative"), "{sent}");
        let (text, html) = (sent.find("text/plain").unwrap(), sent.find("text/html").unwrap());
        assert!(text < html, "text first, HTML last (the preferred part): {sent}");
        assert!(sent.contains("plain words") && sent.contains("<p>rich words</p>"), "{sent}");
    }

    #[test]
    fn without_an_html_part_the_message_is_plain_text() {
        let email = Email { subject: "Hi", text: "plain words", html: None };
        let sent = String::from_utf8(build(&from(), "a@example.com", &email).unwrap().formatted()).unwrap();
        assert!(!sent.contains("multipart") && sent.contains("text/plain") && sent.contains("plain words"), "{sent}");
    }
}
