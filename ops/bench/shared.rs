//! What the HTTP benchmarks share (`lockers-exchange-bench`,
//! `lockers-code-bench`; a `#[path]` module, since the benches are plain
//! binaries, each using part of it): the flags naming the app under test, and
//! a fake Twilio (`POST .../Messages.json` over HTTP/1.1 keep-alive, answered
//! `201` at once, every SMS kept by recipient with the moment it arrived).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The app under test.
#[derive(Args)]
pub struct Target {
    /// Base URL of the running app.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The app's database (setup rows, counters).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/lockers")]
    pub database_url: String,
    /// Where the fake Twilio listens; the app's TWILIO_API_BASE must point here.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub twilio_listen: String,
}

/// SMS bodies by recipient, and a wake-up for whoever waits for one.
#[derive(Default)]
pub struct Inbox {
    messages: Mutex<HashMap<String, Vec<(Instant, String)>>>,
    arrived: Notify,
    sid: AtomicU64,
}

impl Inbox {
    pub fn count(&self, to: &str) -> usize {
        self.messages.lock().map(|m| m.get(to).map_or(0, Vec::len)).unwrap_or(0)
    }

    /// Six-digit codes in messages to `to` from index `from` on, oldest first.
    pub fn codes_since(&self, to: &str, from: usize) -> Vec<String> {
        let Ok(messages) = self.messages.lock() else { return Vec::new() };
        let Some(list) = messages.get(to) else { return Vec::new() };
        list.iter().skip(from).filter_map(|(_, body)| six_digits(body)).collect()
    }

    /// Waits until a message with a code beyond the first `skip` codes (counted from index `from`) arrives.
    pub async fn wait_code(&self, to: &str, from: usize, skip: usize, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(code) = self.codes_since(to, from).into_iter().nth(skip) {
                return Some(code);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Waits until at least `n` messages to `to` have arrived.
    pub async fn wait_count(&self, to: &str, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count(to) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// When the first message to `to` arrived.
    pub fn first_arrival(&self, to: &str) -> Option<Instant> {
        self.messages.lock().ok()?.get(to)?.first().map(|(at, _)| *at)
    }

    pub fn forget(&self, to: &str) {
        if let Ok(mut messages) = self.messages.lock() {
            messages.remove(to);
        }
    }
}

fn six_digits(body: &str) -> Option<String> {
    body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).map(str::to_owned)
}

/// `application/x-www-form-urlencoded` value decoding (`+` and `%XX`).
fn form_decode(raw: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| form_decode(v)))
}

/// Starts the fake Twilio on `listen`; what it receives lands in the inbox returned.
pub async fn start_twilio(listen: &str) -> anyhow::Result<Arc<Inbox>> {
    let inbox = Arc::new(Inbox::default());
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("bind {listen}: {e}"))?;
    tokio::spawn(serve_twilio(listener, inbox.clone()));
    Ok(inbox)
}

/// Serves Twilio's `POST .../Messages.json` over HTTP/1.1 keep-alive: enough
/// of the protocol for the app's Twilio client, nothing more.
async fn serve_twilio(listener: TcpListener, inbox: Arc<Inbox>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let inbox = inbox.clone();
        tokio::spawn(async move {
            if let Err(e) = twilio_connection(stream, &inbox).await {
                eprintln!("fake twilio: {e:#}");
            }
        });
    }
}

async fn twilio_connection(mut stream: TcpStream, inbox: &Inbox) -> anyhow::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Headers.
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("connection closed inside a request body");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        buf.drain(..head_end + length);
        let (status, answer) = match (form_field(&body, "To"), form_field(&body, "Body")) {
            (Some(to), Some(text)) if head.starts_with("POST ") && head.contains("/Messages.json") => {
                if let Ok(mut messages) = inbox.messages.lock() {
                    messages.entry(to).or_default().push((Instant::now(), text));
                }
                inbox.arrived.notify_waiters();
                let sid = inbox.sid.fetch_add(1, Ordering::Relaxed);
                ("201 Created", format!("{{\"sid\":\"SM{sid:032x}\",\"status\":\"queued\"}}"))
            }
            _ => ("400 Bad Request", "{\"message\":\"expected To and Body\"}".to_owned()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_forms_decode_and_codes_are_found() {
        let body = "To=%2B919800000001&From=%2B15005550006&Body=Your+code+is+123456.+Door+4";
        assert_eq!(form_field(body, "To").as_deref(), Some("+919800000001"));
        assert_eq!(form_field(body, "Body").as_deref(), Some("Your code is 123456. Door 4"));
        assert_eq!(six_digits("Your code is 123456. Door 4").as_deref(), Some("123456"));
        assert_eq!(six_digits("Door 4, locker 1234567"), None);
        assert_eq!(form_decode("100%25+sure%"), "100% sure%");
    }
}
