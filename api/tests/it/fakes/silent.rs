//! A server that accepts TCP connections and never says a word (no SMTP
//! greeting, no HTTP response): the client's own timeout is all that ends a
//! call to it. Point the SMTP or the Twilio provider at it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

pub struct SilentServer {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind silent server");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        SilentServer { addr, connections }
    }

    /// Flags that make it the SMTP relay.
    pub fn smtp_flags(&self) -> Vec<String> {
        super::smtp::plain_smtp_flags(self.addr.port())
    }

    /// Flags that make it the Twilio API.
    pub fn twilio_flags(&self) -> Vec<String> {
        vec![
            "--sms-provider=twilio".into(),
            format!("--twilio-api-base=http://{}", self.addr),
            "--twilio-account-sid=AC00000000000000000000000000000000".into(),
            "--twilio-auth-token=silent-token".into(),
            "--twilio-from=+15005550006".into(),
        ]
    }

    /// Connections accepted so far (each a call that got stuck).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
