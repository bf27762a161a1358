//! A real SMTP server no one here wrote: aiosmtpd (PyPI), run by
//! `fakes/smtpd.py` as a child process, with STARTTLS or implicit TLS, a
//! certificate from a test CA and AUTH PLAIN/LOGIN checked against one user.
//! Its Python comes from `LOCKERS_TEST_PYTHON`, else the virtualenv that
//! `.ci/aiosmtpd.sh` makes, which the first relay of a test run makes when it
//! is missing (so `cargo test` alone sets it up); if that fails, the tests
//! fail and say so.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::smtp::Mail;
use super::tls::TestCa;

/// The relay's one account.
pub const USERNAME: &str = "lockers-relay";
pub const PASSWORD: &str = "relay-secret-7d1f";

/// How the relay speaks TLS, as `SMTP_TLS` names it.
#[derive(Clone, Copy)]
pub enum Mode {
    Starttls,
    Tls,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Starttls => "starttls",
            Mode::Tls => "tls",
        }
    }
}

/// One message the relay accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail: Mail,
    /// The session was encrypted when the message came.
    pub tls: bool,
    /// Who had logged in.
    pub login: Option<String>,
    /// The id the relay answered the message with.
    pub queue_id: String,
}

#[derive(Deserialize)]
struct Line {
    mail_from: String,
    rcpt_tos: Vec<String>,
    data: String,
    tls: bool,
    login: Option<String>,
    queue_id: String,
}

pub struct Relay {
    pub port: u16,
    pub mode: Mode,
    received: Arc<Mutex<Vec<Received>>>,
    files: Vec<PathBuf>,
    /// Killed on drop; its standard input closing also ends it.
    _child: Child,
}

const SETUP: &str = "bash .ci/aiosmtpd.sh";

/// The Python that has aiosmtpd; the virtualenv is made on first use.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("LOCKERS_TEST_PYTHON") {
        return python.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    let python = Path::new(&home).join(".cache/lockers/aiosmtpd-venv/bin/python");
    static SET_UP: std::sync::Once = std::sync::Once::new();
    SET_UP.call_once(|| {
        if python.exists() {
            return;
        }
        // Idempotent, so a second test process racing this one does no harm.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = std::process::Command::new("bash").arg(".ci/aiosmtpd.sh").current_dir(&repo).status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("`{SETUP}` failed ({status:?}); the mail relay tests will say what is missing");
        }
    });
    python
}

impl Relay {
    /// Starts the relay with the server certificate `ca` issued.
    pub async fn start(mode: Mode, ca: &TestCa) -> Relay {
        let python = python();
        assert!(
            python.exists(),
            "the mail relay tests need Python with aiosmtpd: {} is missing. Run `{SETUP}` from the \
             repository (a virtualenv under ~/.cache/lockers) or set LOCKERS_TEST_PYTHON",
            python.display()
        );
        let (cert, key) = ca.write_server_pem();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fakes/smtpd.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--mode", mode.as_str(), "--username", USERNAME])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .env("SMTPD_PASSWORD", PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", python.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout piped")).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let port = match first {
            Ok(Ok(Some(line))) => line.strip_prefix("LISTENING ").and_then(|p| p.trim().parse::<u16>().ok()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = (std::fs::remove_file(&cert), std::fs::remove_file(&key));
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = tokio::time::timeout(Duration::from_secs(5), err.read_to_string(&mut stderr)).await;
            }
            panic!(
                "aiosmtpd did not start ({}); if it is not installed, run `{SETUP}`. Its stderr: {stderr}",
                python.display()
            );
        };
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(json) = line.strip_prefix("MAIL ") else { continue };
                let line: Line = serde_json::from_str(json).expect("the relay's MAIL line is JSON");
                let mail = Mail { from: line.mail_from, to: line.rcpt_tos, data: line.data };
                let received = Received { mail, tls: line.tls, login: line.login, queue_id: line.queue_id };
                store.lock().expect("lock").push(received);
            }
        });
        // Drained so the relay never blocks on a full pipe.
        let mut stderr = child.stderr.take().expect("stderr piped");
        tokio::spawn(async move { tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await });
        Relay { port, mode, received, files: vec![cert, key], _child: child }
    }

    /// Flags that make this relay the app's, trusting `ca_file` and logging
    /// in with `password`.
    pub fn flags(&self, ca_file: &Path, password: &str) -> Vec<String> {
        vec![
            "--email-provider=smtp".into(),
            "--smtp-host=127.0.0.1".into(),
            format!("--smtp-port={}", self.port),
            format!("--smtp-tls={}", self.mode.as_str()),
            format!("--smtp-username={USERNAME}"),
            format!("--smtp-password={password}"),
            format!("--smtp-ca-file={}", ca_file.display()),
            "--email-from=Lockers <no-reply@lockers.test>".into(),
        ]
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}
