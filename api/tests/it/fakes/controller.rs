//! A fake locker point controller speaking door controller protocol v1: the
//! shipped simulator (`lockers_api::simulator::Controller`) with every request
//! recorded, served over plain HTTP or over TLS with a certificate from a test CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lockers_api::simulator::{Backend, Controller, Faults};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::tls::TestCa;

pub struct FakeController {
    /// The base URL to store as the point's `controller_url`.
    pub url: String,
    controller: Arc<Controller>,
}

impl std::ops::Deref for FakeController {
    type Target = Controller;
    fn deref(&self) -> &Controller {
        &self.controller
    }
}

fn controller(token: &str, api: Option<&str>) -> Arc<Controller> {
    let backend = api.map(|api| Backend { api: api.to_owned() });
    Controller::new(token.to_owned(), backend, Faults::default(), Duration::from_millis(50), true)
}

impl FakeController {
    /// Plain HTTP; `api` is where events go (none: no events).
    pub async fn start(token: &str, api: Option<&str>) -> FakeController {
        let controller = controller(token, api);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake controller");
        let addr = listener.local_addr().expect("addr");
        let router = controller.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeController { url: format!("http://{addr}"), controller }
    }

    /// HTTPS with a certificate for 127.0.0.1 and localhost issued by `ca`.
    pub async fn start_tls(token: &str, api: Option<&str>, ca: &TestCa) -> FakeController {
        let controller = controller(token, api);
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind fake controller");
        let addr = tcp.local_addr().expect("addr");
        let listener = TlsListener { tcp, acceptor: TlsAcceptor::from(Arc::new(ca.server_config())) };
        let router = controller.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeController { url: format!("https://{addr}"), controller }
    }
}

/// Accepts TCP connections and completes a TLS handshake on each; failed
/// handshakes (a client that does not trust the certificate) are dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// The address `lockers-admin simulate-controller` (spawned with piped
/// stdout and stderr) says it listens on: the first stdout line naming an
/// `http://` URL. If the process ends first, the panic shows how and its stderr.
pub async fn simulator_url(child: &mut std::process::Child) -> String {
    use std::io::{BufRead, Read};
    let stdout = child.stdout.take().expect("stdout piped");
    let found = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        lines.find_map(|line| {
            let line = line.ok()?;
            line.split_whitespace().find(|w| w.starts_with("http://")).map(str::to_owned)
        })
    })
    .await
    .expect("the reader task");
    if let Some(url) = found {
        return url;
    }
    let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr).ok();
    }
    panic!("the simulator never said where it listens; it ended with {status}; stderr: {stderr}");
}
