//! A TCP proxy in front of a real server (PostgreSQL here) that can be cut and
//! restored, to show what the intake and the workers do while the server is
//! unreachable and after it comes back.
//!
//! While cut, established connections are closed and new ones are accepted but
//! never answered: the harshest kind of outage for a client, since only its own
//! timeouts get it out (a refused connection would fail fast by itself).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut and restore; each connection ends when it changes.
    epoch: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (cut, epoch) = (Arc::new(AtomicBool::new(false)), watch::Sender::new(0u64));
        let (flag, epochs, upstream) = (cut.clone(), epoch.clone(), upstream.to_owned());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                // Subscribed before the flag is read: a cut right after still ends this connection.
                let mut changed = epochs.subscribe();
                changed.borrow_and_update();
                let (flag, upstream) = (flag.clone(), upstream.clone());
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Held silent until the next restore, then closed.
                        let _ = changed.changed().await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        TcpProxy { addr, cut, epoch }
    }

    /// Closes every proxied connection; new ones hang unanswered until `restore`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Forwards new connections again (and closes the ones held during the cut).
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }
}
