//! A TCP proxy in front of a real server (PostgreSQL here) that can be cut and
//! restored, to show what the intake and the workers do while the server is
//! unreachable and after it comes back.
//!
//! While cut, established connections are closed and new ones are accepted but
//! never answered: the harshest kind of outage for a client, since only its own
//! timeouts get it out (a refused connection would fail fast by itself).
//!
//! While stalled, established connections stay open but nothing crosses them
//! (a network that silently drops packets): a query in flight neither answers
//! nor fails until the client's own timeout, or TCP's, gives up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct TcpProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped on every cut and restore; each connection ends when it changes.
    epoch: watch::Sender<u64>,
    /// True while connections are held open without forwarding.
    stalled: watch::Sender<bool>,
}

impl TcpProxy {
    pub async fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (cut, epoch) = (Arc::new(AtomicBool::new(false)), watch::Sender::new(0u64));
        let stalled = watch::Sender::new(false);
        let (flag, epochs, upstream, stalls) = (cut.clone(), epoch.clone(), upstream.to_owned(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // Subscribed before the flag is read: a cut right after still ends this connection.
                let mut changed = epochs.subscribe();
                changed.borrow_and_update();
                let (flag, upstream, stall) = (flag.clone(), upstream.clone(), stalls.subscribe());
                tokio::spawn(async move {
                    if flag.load(Ordering::SeqCst) {
                        // Held silent until the next restore, then closed.
                        let _ = changed.changed().await;
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let ((client_read, client_write), (server_read, server_write)) =
                        (client.into_split(), server.into_split());
                    tokio::select! {
                        () = pump(client_read, server_write, stall.clone()) => {}
                        () = pump(server_read, client_write, stall) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        TcpProxy { addr, cut, epoch, stalled }
    }

    /// Stops forwarding on every connection, established or new, without
    /// closing any, until `restore`.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Closes every proxied connection; new ones hang unanswered until `restore`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Forwards new connections again (and closes the ones held during the cut).
    pub fn restore(&self) {
        self.stalled.send_replace(false);
        self.cut.store(false, Ordering::SeqCst);
        self.epoch.send_modify(|e| *e += 1);
    }
}

/// Copies one direction, holding bytes (unread, or read and not yet written)
/// while the proxy is stalled.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut stalled: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
