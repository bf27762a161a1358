//! Poll strategies that never lose a wake-up (apalis-postgres 1.0's built-in
//! ones do; see ../shared/bench/FINDINGS.md): LISTEN/NOTIFY drained to
//! `Pending` so a waker is always registered, plus a short timer backstop for
//! delayed jobs and retries, which are never announced.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};
use apalis_postgres::Pubsub;
use futures::StreamExt;

/// Ready whenever at least one insert notification arrived since the last poll.
pub struct DrainedPubsub {
    notifications: Pubsub,
}

impl DrainedPubsub {
    pub fn new(pool: sqlx::PgPool, queue: &str) -> Self {
        Self { notifications: Pubsub::new(pool, queue.to_owned()) }
    }
}

impl PollStrategy for DrainedPubsub {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut notified = false;
        loop {
            match self.notifications.poll_next_unpin(cx) {
                Poll::Ready(Some(_)) => notified = true,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        if notified { Poll::Ready(Some(())) } else { Poll::Pending }
    }
}

/// A tick every `period` on tokio's timer; the re-armed sleep is polled at once
/// so its waker is registered for the next tick.
pub struct Backstop {
    period: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Backstop {
    pub fn new(period: Duration) -> Self {
        Self { period, sleep: Box::pin(tokio::time::sleep(period)) }
    }
}

impl PollStrategy for Backstop {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.sleep.as_mut().reset(tokio::time::Instant::now() + self.period);
                let _ = self.sleep.as_mut().poll(cx);
                Poll::Ready(Some(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
