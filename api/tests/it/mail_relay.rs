//! The production mail path: email over STARTTLS and over implicit TLS, with
//! AUTH, to a real SMTP server no one here wrote (aiosmtpd) whose certificate
//! comes from a private CA the app trusts through `SMTP_CA_FILE`. A
//! certificate from another CA, one for another host name and a wrong
//! password each fail the message for good, with the reason on its outbox row;
//! so does a relay that offers no STARTTLS (never written to in clear).

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use lockers_core::config::Config;
use lockers_workers::providers::Providers;
use serde_json::Value;

use crate::fakes::aiosmtpd::{self, Mode, Received, Relay};
use crate::fakes::smtp::FakeSmtp;
use crate::fakes::tls::TestCa;
use crate::harness::{SERVER_URL, TestApp, Workers, eventually};

const PASSWORD: &str = "correct horse battery";

async fn app_using(relay: &Relay, ca_file: &Path, relay_password: &str) -> (TestApp, Workers) {
    let mut flags = relay.flags(ca_file, relay_password);
    flags.extend(["--scheduler=false".to_owned(), "--worker-queues=otp=1,notify=1".to_owned()]);
    let app = TestApp::spawn_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let workers = app.start_workers(None);
    (app, workers)
}

/// The outbox row of the one message to `email` once it is settled:
/// (status, attempts, provider_message_id, last_error).
async fn outcome(app: &TestApp, email: &str) -> (String, i32, Option<String>, Option<String>) {
    let read = || async {
        sqlx::query_as::<_, (String, i32, Option<String>, Option<String>)>(
            "SELECT status, attempts, provider_message_id, last_error FROM notifications WHERE recipient = $1",
        )
        .bind(email)
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    };
    let settled = eventually(Duration::from_secs(20), || async {
        read().await.is_some_and(|row| !["pending", "sending"].contains(&row.0.as_str()))
    })
    .await;
    assert!(settled, "the message to {email} was not settled: {:?}", read().await);
    read().await.unwrap()
}

/// Signs up `email` and returns what the relay received for it.
async fn signup_mail(app: &TestApp, relay: &Relay, email: &str) -> Received {
    assert_eq!(app.signup("Asha", email, None, PASSWORD).await.status(), 201);
    let to_email = || relay.received().into_iter().filter(|r| r.mail.to == [email]).collect::<Vec<_>>();
    let arrived = eventually(Duration::from_secs(20), || async { !to_email().is_empty() }).await;
    assert!(arrived, "no mail to {email} reached the relay; outbox: {:?}", outcome(app, email).await);
    to_email().remove(0)
}

/// A signup's verification mail reaches the relay encrypted and logged in,
/// with its parts, and its code proves the address.
async fn delivers(mode: Mode) {
    let ca = TestCa::new("Company mail CA");
    let relay = Relay::start(mode, &ca).await;
    let ca_file = ca.write_pem();
    let (app, workers) = app_using(&relay, &ca_file, aiosmtpd::PASSWORD).await;
    let email = "asha@example.com";

    let got = signup_mail(&app, &relay, email).await;
    assert!(got.tls, "the session was encrypted");
    assert_eq!(got.login.as_deref(), Some(aiosmtpd::USERNAME), "the app logged in");
    assert_eq!(got.mail.from, "no-reply@lockers.test");
    let data = got.mail.decoded();
    assert!(data.contains(&format!("To: {email}")), "{data}");
    assert!(data.contains("Subject: "), "{data}");
    assert!(data.contains("multipart/alternative") && data.contains("text/plain") && data.contains("text/html"));
    let code = got.mail.code().expect("a code in the mail");
    let verified = app.verify_keeping_password(email, &code, PASSWORD).await;
    assert_eq!(verified.status(), 200, "the code from the relay proves the address");
    assert_eq!(verified.json::<Value>().await.unwrap()["email_verified"], true);

    let (status, attempts, provider_id, error) = outcome(&app, email).await;
    assert_eq!((status.as_str(), attempts, error), ("sent", 1, None));
    let provider_id = provider_id.expect("the relay's answer is kept");
    assert!(provider_id.ends_with(&got.queue_id), "{provider_id} names the relay's queue id {}", got.queue_id);
    assert_eq!(relay.received().len(), 1, "sent once");
    workers.stop().await;
    std::fs::remove_file(ca_file).ok();
}

#[tokio::test]
async fn mail_over_starttls_with_auth_reaches_a_real_smtp_server_trusting_a_private_ca() {
    delivers(Mode::Starttls).await;
}

#[tokio::test]
async fn mail_over_implicit_tls_with_auth_reaches_a_real_smtp_server_trusting_a_private_ca() {
    delivers(Mode::Tls).await;
}

/// The message to a signup fails at its first attempt with `reason`, and
/// nothing reaches the relay.
async fn fails_for_good(relay: &Relay, ca_file: &Path, relay_password: &str, reason: &str) {
    let (app, workers) = app_using(relay, ca_file, relay_password).await;
    let email = "ravi@example.com";
    assert_eq!(app.signup("Ravi", email, None, PASSWORD).await.status(), 201);
    let (status, attempts, provider_id, error) = outcome(&app, email).await;
    // Failed at the first attempt: given up, not left to retry.
    assert_eq!((status.as_str(), attempts, provider_id), ("failed", 1, None));
    assert_eq!(error.as_deref(), Some(reason));
    assert!(relay.received().is_empty(), "nothing reached the relay");
    workers.stop().await;
}

#[tokio::test]
async fn a_relay_certificate_from_another_ca_fails_the_message_with_the_reason() {
    let relay_ca = TestCa::new("The relay's CA");
    let relay = Relay::start(Mode::Starttls, &relay_ca).await;
    let trusted = TestCa::new("Company mail CA").write_pem();
    let reason = "TLS: certificate not trusted (issuer unknown; SMTP_CA_FILE can add the relay's CA)";
    fails_for_good(&relay, &trusted, aiosmtpd::PASSWORD, reason).await;
    std::fs::remove_file(trusted).ok();
}

#[tokio::test]
async fn a_relay_certificate_for_another_host_name_fails_the_message_with_the_reason() {
    let ca = TestCa::issuing("Company mail CA", &["mail.elsewhere.test"], false);
    let relay = Relay::start(Mode::Tls, &ca).await;
    let ca_file = ca.write_pem();
    let reason = "TLS: certificate not valid for the host name 127.0.0.1";
    fails_for_good(&relay, &ca_file, aiosmtpd::PASSWORD, reason).await;
    std::fs::remove_file(ca_file).ok();
}

#[tokio::test]
async fn a_wrong_relay_password_fails_the_message_with_the_reason() {
    let ca = TestCa::new("Company mail CA");
    let relay = Relay::start(Mode::Starttls, &ca).await;
    let ca_file = ca.write_pem();
    let reason = "SMTP authentication rejected (535 5.7.8 Authentication credentials invalid)";
    fails_for_good(&relay, &ca_file, "not-the-password", reason).await;
    std::fs::remove_file(ca_file).ok();
}

#[tokio::test]
async fn a_relay_without_starttls_is_never_written_to_in_clear() {
    // Plain SMTP only: its EHLO offers no STARTTLS.
    let plain = FakeSmtp::start().await;
    let mut flags: Vec<String> = plain.flags().into_iter().filter(|f| f != "--smtp-tls=none").collect();
    flags.extend(["--smtp-tls=starttls".to_owned(), "--scheduler=false".to_owned()]);
    flags.extend(["--smtp-username=lockers".to_owned(), "--smtp-password=secret".to_owned()]);
    let app = TestApp::spawn_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let workers = app.start_workers(None);
    let email = "ravi@example.com";
    assert_eq!(app.signup("Ravi", email, None, PASSWORD).await.status(), 201);
    let (status, attempts, _, error) = outcome(&app, email).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    let reason = "SMTP session impossible (STARTTLS): STARTTLS is not supported on this server";
    assert_eq!(error.as_deref(), Some(reason));
    assert_eq!(plain.begun(), 0, "no message began");
    workers.stop().await;
}

/// An SMTP configuration trusting `ca_file`.
fn trusting(ca_file: &Path) -> Config {
    let ca = format!("--smtp-ca-file={}", ca_file.display());
    let flags =
        ["lockers", "--email-provider=smtp", "--smtp-host=mail.example.com", "--email-from=a@lockers.test", &ca];
    Config::try_parse_from(flags).unwrap().validated().unwrap()
}

/// The error chain of building the providers with `SMTP_CA_FILE=ca_file`.
fn providers_error(ca_file: &Path) -> String {
    let Err(error) = Providers::from_config(&trusting(ca_file)) else { panic!("providers built") };
    format!("{error:#}")
}

#[tokio::test]
async fn an_unusable_smtp_ca_file_stops_the_start() {
    let missing = std::env::temp_dir().join(format!("lockers-missing-{}.pem", uuid::Uuid::new_v4().simple()));
    let error = providers_error(&missing);
    assert!(error.starts_with(&format!("Failed to read SMTP_CA_FILE {}", missing.display())), "{error}");

    let no_certificate = std::env::temp_dir().join(format!("lockers-empty-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&no_certificate, "not a certificate\n").unwrap();
    let error = providers_error(&no_certificate);
    assert_eq!(error, format!("SMTP_CA_FILE {} holds no certificate", no_certificate.display()));
    std::fs::remove_file(no_certificate).ok();

    // A readable CA file is accepted.
    let good = TestCa::new("Company mail CA").write_pem();
    assert!(Providers::from_config(&trusting(&good)).is_ok());
    std::fs::remove_file(good).ok();
}

/// `lockers-api --with-workers`, the single-machine default, as a real
/// process: a CA file without a certificate ends it before it listens.
#[tokio::test]
async fn lockers_api_with_workers_refuses_to_start_with_an_unusable_smtp_ca_file() {
    let bad = std::env::temp_dir().join(format!("lockers-bad-ca-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_lockers-api"))
        .arg("--with-workers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("{SERVER_URL}/lockers_t_never_{}", uuid::Uuid::new_v4().simple()))
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("EMAIL_PROVIDER", "smtp")
        .env("SMTP_HOST", "mail.example.com")
        .env("EMAIL_FROM", "Lockers <no-reply@lockers.test>")
        .env("SMTP_CA_FILE", &bad)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run).await.expect("it ends by itself").unwrap();
    std::fs::remove_file(&bad).ok();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it did not start: {stderr}");
    assert!(stderr.contains(&format!("SMTP_CA_FILE {} holds no certificate", bad.display())), "{stderr}");
}
