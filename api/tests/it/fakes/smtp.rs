//! A fake SMTP server speaking enough of RFC 5321 for a real client (lettre):
//! greeting, EHLO/HELO, MAIL, RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT.
//! It records every accepted message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message as sent after DATA (headers and body).
    pub data: String,
}

impl Mail {
    /// The message with quoted-printable soft line breaks and escapes undone.
    pub fn decoded(&self) -> String {
        let joined = self.data.replace("=\r\n", "");
        let mut out = String::with_capacity(joined.len());
        let mut chars = joined.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '=' {
                let hex: String = chars.clone().take(2).collect();
                if let Ok(byte) = u8::from_str_radix(&hex, 16) {
                    out.push(byte as char);
                    chars.next();
                    chars.next();
                    continue;
                }
            }
            out.push(c);
        }
        out
    }

    /// A top-level header's value, unfolded (`None` if absent).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_part(&self.data);
        header_in(head, name)
    }

    /// The text/plain part, decoded (the whole body of a plain message).
    pub fn text_part(&self) -> Option<String> {
        self.part("text/plain")
    }

    /// The text/html part of a multipart message, decoded.
    pub fn html_part(&self) -> Option<String> {
        self.part("text/html")
    }

    /// The parts of the message as (content type, decoded body), in order:
    /// one for a single-part message, each part of a multipart one.
    pub fn parts(&self) -> Vec<(String, String)> {
        let (head, body) = split_part(&self.data);
        let content_type = header_in(head, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
        let Some(boundary) = content_type.strip_prefix("multipart/").and_then(|_| parameter(&content_type, "boundary"))
        else {
            return vec![(mime_type(&content_type), decode_body(head, body).replace("\r\n", "\n"))];
        };
        let delimiter = format!("--{boundary}");
        body.split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .map(|part| {
                let (head, body) = split_part(part.trim_start_matches("\r\n"));
                let content_type = header_in(head, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
                (mime_type(&content_type), decode_body(head, body.trim_end_matches("\r\n")).replace("\r\n", "\n"))
            })
            .collect()
    }

    fn part(&self, mime: &str) -> Option<String> {
        self.parts().into_iter().find(|(t, _)| t == mime).map(|(_, body)| body)
    }

    /// The first six-digit number in the message text (the text part, so
    /// no header such as a subject naming a place can stand in for it).
    pub fn code(&self) -> Option<String> {
        let text = self.text_part().unwrap_or_else(|| self.decoded());
        let bytes = text.as_bytes();
        (0..bytes.len().saturating_sub(5)).find_map(|i| {
            let window = &bytes[i..i + 6];
            let bounded =
                (i == 0 || !bytes[i - 1].is_ascii_digit()) && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit());
            (bounded && window.iter().all(u8::is_ascii_digit)).then(|| String::from_utf8_lossy(window).into_owned())
        })
    }
}

/// A part's headers and body (split at the first empty line).
fn split_part(part: &str) -> (&str, &str) {
    part.split_once("\r\n\r\n").unwrap_or((part, ""))
}

/// The value of header `name` in `head`, folded lines joined.
fn header_in(head: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        match &mut value {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line.trim_start_matches(['\t'])),
            Some(_) => break,
            None => {
                let (key, rest) = line.split_once(':').unwrap_or_default();
                if key.eq_ignore_ascii_case(name) {
                    value = Some(rest.trim().to_owned());
                }
            }
        }
    }
    value
}

/// `text/html` of `text/html; charset=utf-8`.
fn mime_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// A `key=value` (or `key="value"`) parameter of a header value.
fn parameter(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// A part's body undone from its Content-Transfer-Encoding.
fn decode_body(head: &str, body: &str) -> String {
    let encoding = header_in(head, "Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD.decode(compact).expect("base64 part");
            String::from_utf8(bytes).expect("utf-8 part")
        }
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let (mut bytes, raw) = (Vec::with_capacity(joined.len()), joined.as_bytes());
            let mut i = 0;
            while i < raw.len() {
                let hex = raw.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
                match (raw[i], hex) {
                    (b'=', Some(byte)) => {
                        bytes.push(byte);
                        i += 3;
                    }
                    (byte, _) => {
                        bytes.push(byte);
                        i += 1;
                    }
                }
            }
            String::from_utf8(bytes).expect("utf-8 part")
        }
        _ => body.to_owned(),
    }
}

#[derive(Clone)]
pub struct FakeSmtp {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
    /// Messages whose DATA began (accepted or not yet).
    begun: Arc<AtomicUsize>,
}

impl FakeSmtp {
    pub async fn start() -> FakeSmtp {
        Self::start_with_delay(Duration::ZERO).await
    }

    /// A server that takes `delay` to accept each message after its data
    /// arrives, like a slow relay: deliveries stay in flight that long.
    pub async fn start_with_delay(delay: Duration) -> FakeSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake smtp");
        let addr = listener.local_addr().expect("addr");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let begun = Arc::new(AtomicUsize::new(0));
        let (store, count) = (mails.clone(), begun.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, store.clone(), count.clone(), delay));
            }
        });
        FakeSmtp { addr, mails, begun }
    }

    /// How many messages began their DATA phase.
    pub fn begun(&self) -> usize {
        self.begun.load(Ordering::SeqCst)
    }

    /// Configuration flags that point the app at this server (plain SMTP).
    pub fn flags(&self) -> Vec<String> {
        plain_smtp_flags(self.addr.port())
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address))).collect()
    }
}

fn angle_address(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.rfind('>').unwrap_or(arg.len());
    arg.get(start..end).unwrap_or_default().to_owned()
}

async fn session(
    stream: TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
    begun: Arc<AtomicUsize>,
    delay: Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.smtp.test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-fake.smtp.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" => {
                from = angle_address(&command);
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(angle_address(&command));
                b"250 OK\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                begun.fetch_add(1, Ordering::SeqCst);
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Undo dot-stuffing.
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let mail = Mail { from: std::mem::take(&mut from), to: std::mem::take(&mut to), data };
                tokio::time::sleep(delay).await;
                mails.lock().expect("lock").push(mail);
                b"250 OK queued as fake-1\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// Flags that make a plain-SMTP server on this host and `port` the app's relay.
pub fn plain_smtp_flags(port: u16) -> Vec<String> {
    vec![
        "--email-provider=smtp".into(),
        "--smtp-host=127.0.0.1".into(),
        format!("--smtp-port={port}"),
        "--smtp-tls=none".into(),
        "--email-from=Lockers <no-reply@lockers.test>".into(),
    ]
}
