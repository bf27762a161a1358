//! One LISTEN connection per process, fanned out to the fetchers of each queue.
//! A wake-up is a `watch` change, so it is never lost: a fetcher busy claiming
//! when it arrives sees it on its next wait and claims again.

use std::collections::HashMap;
use std::time::Duration;

use lockers_core::jobs::Queue;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The channel the job table's insert trigger (and hand-backs, rescues,
/// retries by the operator) notify, with the queue name as payload.
const CHANNEL: &str = "lockers_jobs";

/// Per-queue wake-up signals of one process.
pub struct Wakeups {
    queues: HashMap<Queue, watch::Sender<()>>,
}

impl Wakeups {
    pub fn new() -> Self {
        Self { queues: Queue::ALL.into_iter().map(|q| (q, watch::Sender::new(()))).collect() }
    }

    pub fn subscribe(&self, queue: Queue) -> watch::Receiver<()> {
        match self.queues.get(&queue) {
            Some(sender) => sender.subscribe(),
            // Every queue has a sender (built from Queue::ALL); a detached
            // receiver would still leave the backstop poll working.
            None => watch::Sender::new(()).subscribe(),
        }
    }

    pub fn wake(&self, queue: Queue) {
        if let Some(sender) = self.queues.get(&queue) {
            sender.send_modify(|_| {});
        }
    }

    fn wake_all(&self) {
        self.queues.values().for_each(|sender| sender.send_modify(|_| {}));
    }

    /// Forwards notifications until `stop`. After a lost connection every queue
    /// is woken, since notifications sent while it was down are gone.
    ///
    /// Any error drops the listener and opens a new one (retrying every
    /// second while the database is away) rather than trusting the old
    /// connection to recover: sqlx reconnects by itself only after some
    /// failures (a clean end of stream), and a listener left on a dead
    /// connection would leave every queue on the backstop poll for good.
    pub async fn listen(&self, pool: PgPool, stop: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let mut listener = match connect(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    failures += 1;
                    // One line per outage at warn, the retries below it.
                    if failures == 1 {
                        tracing::warn!(%error, "job wake-up listener could not connect; retrying every second");
                    } else {
                        tracing::debug!(%error, failures, "job wake-up listener still cannot connect");
                    }
                    if pause(&stop, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if failures > 0 {
                tracing::info!(failures, "job wake-up listener connected again");
                failures = 0;
            }
            // Anything enqueued before LISTEN took effect, or while it was down.
            self.wake_all();
            loop {
                let received = tokio::select! {
                    received = listener.try_recv() => received,
                    () = stop.cancelled() => return,
                };
                match received {
                    Ok(Some(notification)) => match notification.payload().parse::<Queue>() {
                        Ok(queue) => self.wake(queue),
                        Err(_) => tracing::debug!(payload = notification.payload(), "wake-up for an unknown queue"),
                    },
                    // sqlx lost the connection and already listens on a new one.
                    Ok(None) => self.wake_all(),
                    Err(error) => {
                        tracing::warn!(%error, "job wake-up listener failed; reconnecting");
                        self.wake_all();
                        break;
                    }
                }
            }
            drop(listener);
            if pause(&stop, Duration::from_secs(1)).await {
                return;
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Sleeps `period`; true when `stop` came first.
pub async fn pause(stop: &CancellationToken, period: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => false,
        () = stop.cancelled() => true,
    }
}
