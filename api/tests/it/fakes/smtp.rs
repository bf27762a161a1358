//! A fake SMTP server speaking enough of RFC 5321 for a real client (lettre):
//! greeting, EHLO/HELO, MAIL, RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT.
//! It records every accepted message.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    /// The first six-digit number in the message text.
    pub fn code(&self) -> Option<String> {
        let text = self.decoded();
        let bytes = text.as_bytes();
        (0..bytes.len().saturating_sub(5)).find_map(|i| {
            let window = &bytes[i..i + 6];
            let bounded =
                (i == 0 || !bytes[i - 1].is_ascii_digit()) && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit());
            (bounded && window.iter().all(u8::is_ascii_digit)).then(|| String::from_utf8_lossy(window).into_owned())
        })
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
