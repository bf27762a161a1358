//! `JobBackend`: the apalis `Backend` over the `jobs` table, and `AckLayer`,
//! the tower layer apalis places around every handler call to record its
//! outcome.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{AbortError, Backend, BoxDynError, Task, TaskBuilder, TaskId, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use futures::FutureExt;
use futures::future::BoxFuture;
use lockers_core::jobs::Queue;
use lockers_core::jobs::backoff::Backoff;
use lockers_core::jobs::claims::{self, Claimed, Failure};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tower::{Layer, Service};

use super::{Engine, EngineSettings, pause};

/// Most outcomes written by one acknowledgement round.
const ACK_BATCH: usize = 1024;

/// While a queue is busy its fetcher polls this often instead of waiting for
/// NOTIFY, which enqueues then leave out (see migrations/0004_job_queue_polling.sql).
const BUSY_POLL: Duration = Duration::from_millis(5);

/// How long a fetcher promises to keep polling after it last found work; renewed
/// at half of it while jobs keep coming.
const BUSY_WINDOW: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum JobBackendError {
    #[error("the job acknowledger stopped before flushing")]
    AcknowledgerGone,
}

/// What became of one claimed job.
#[derive(Debug)]
enum Ack {
    Completed(i64),
    Failed(Failure),
    /// Back to ready: `started` runs count as attempts, prefetched ones do not.
    Released {
        id: i64,
        started: bool,
    },
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// One worker's jobs of one queue. Tasks start on the first poll: a backend
/// built but never run claims nothing.
pub struct JobBackend<Args> {
    engine: Engine,
    queue: Queue,
    jobs: Option<mpsc::Receiver<Claimed>>,
    acks: mpsc::UnboundedSender<Ack>,
    idle: Option<(mpsc::Sender<Claimed>, mpsc::UnboundedReceiver<Ack>)>,
    fetcher: Option<JoinHandle<()>>,
    stop_fetcher: CancellationToken,
    // Stops the fetcher if the worker is dropped without closing (shutdown
    // timeout); the jobs it held are then handed back by `Engine::stop`.
    _fetcher_guard: DropGuard,
    closing: Option<BoxFuture<'static, Result<(), JobBackendError>>>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> JobBackend<Args> {
    pub(super) fn new(engine: Engine, queue: Queue) -> Self {
        let (job_tx, job_rx) = mpsc::channel(engine.settings().prefetch);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let stop_fetcher = CancellationToken::new();
        Self {
            engine,
            queue,
            jobs: Some(job_rx),
            acks: ack_tx,
            idle: Some((job_tx, ack_rx)),
            fetcher: None,
            _fetcher_guard: stop_fetcher.clone().drop_guard(),
            stop_fetcher,
            closing: None,
            _args: PhantomData,
        }
    }

    fn start(&mut self) {
        if let Some((job_tx, ack_rx)) = self.idle.take() {
            let wake = self.engine.wakeups().subscribe(self.queue);
            let fetcher = fetch(self.engine.clone(), self.queue, job_tx, wake, self.stop_fetcher.clone());
            self.fetcher = Some(tokio::spawn(fetcher));
            tokio::spawn(acknowledge(self.engine.clone(), self.queue, ack_rx));
        }
    }

    /// Jobs in the buffer were claimed but never started.
    fn close(&mut self) -> BoxFuture<'static, Result<(), JobBackendError>> {
        self.stop_fetcher.cancel();
        let fetcher = self.fetcher.take();
        let jobs = self.jobs.take();
        let acks = self.acks.clone();
        async move {
            if let Some(fetcher) = fetcher {
                // The fetcher finishes a claim in flight (its rows land in the buffer) and exits.
                let _ = fetcher.await;
            }
            if let Some(mut jobs) = jobs {
                jobs.close();
                while let Ok(job) = jobs.try_recv() {
                    let _ = acks.send(Ack::Released { id: job.id, started: false });
                }
            }
            let (flushed_tx, flushed) = oneshot::channel();
            acks.send(Ack::Flush(flushed_tx)).map_err(|_| JobBackendError::AcknowledgerGone)?;
            flushed.await.map_err(|_| JobBackendError::AcknowledgerGone)
        }
        .boxed()
    }
}

impl<Args: DeserializeOwned> Backend for JobBackend<Args> {
    type Task = Task<Args>;
    type Error = JobBackendError;

    fn poll_ready(&mut self, _: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        self.start();
        Poll::Ready(Ok(()))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.start();
        let Some(jobs) = self.jobs.as_mut() else { return Poll::Ready(None) };
        loop {
            let Some(job) = std::task::ready!(jobs.poll_recv(cx)) else { return Poll::Ready(None) };
            match serde_json::from_str::<Args>(&job.payload) {
                Ok(args) => {
                    let task = TaskBuilder::new(args)
                        .task_id(TaskId::from_int(job.id as u64))
                        // apalis counts the run that is starting; the claim already did.
                        .attempt(job.attempts.saturating_sub(1) as usize)
                        .max_attempts(job.max_attempts as usize)
                        .build();
                    return Poll::Ready(Some(Ok(task)));
                }
                // A payload no handler can read will never succeed: dead, and the
                // worker carries on (apalis would stop the worker on a decode error).
                Err(error) => {
                    tracing::error!(job_id = job.id, queue = %self.queue, %error, "job payload does not decode");
                    let failure =
                        Failure { id: job.id, retry_in: None, error: format!("payload does not decode: {error}") };
                    let _ = self.acks.send(Ack::Failed(failure));
                }
            }
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _: &WorkerContext) -> Poll<Result<(), Self::Error>> {
        let closing = match &mut self.closing {
            Some(closing) => closing,
            None => {
                let closing = self.close();
                self.closing.insert(closing)
            }
        };
        closing.as_mut().poll(cx)
    }
}

impl<Args> BackendConfig for JobBackend<Args> {
    type Args = Args;
    type Id = u64;
    type Kind = Ephemeral;
    type Config = EngineSettings;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        self.engine.settings()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        AckLayer { acks: self.acks.clone(), backoff: self.engine.settings().backoff }
    }
}

/// Claims due jobs into the buffer whenever it has room; when none are due,
/// sleeps until a wake-up, the next job's run time, or the backstop poll.
async fn fetch(
    engine: Engine,
    queue: Queue,
    buffer: mpsc::Sender<Claimed>,
    mut wake: watch::Receiver<()>,
    stop: CancellationToken,
) {
    let settings = engine.settings().clone();
    let pool = engine.pool().clone();
    // Until when this fetcher promised to poll (local clock, conservative).
    let mut polling_until: Option<tokio::time::Instant> = None;
    while !stop.is_cancelled() {
        if buffer.capacity() == 0 {
            tokio::select! {
                permit = buffer.reserve() => match permit {
                    Ok(permit) => drop(permit),
                    Err(_) => return,
                },
                () = stop.cancelled() => return,
            }
            continue;
        }
        // Wake-ups from here on are covered by this claim or trigger the next one.
        wake.borrow_and_update();
        let want = buffer.capacity();
        let claim = match claims::claim(&pool, queue.as_str(), engine.worker_id(), want as i64).await {
            Ok(claim) => claim,
            Err(error) => {
                tracing::warn!(%queue, %error, "claiming jobs failed");
                if pause(&stop, settings.poll).await {
                    return;
                }
                continue;
            }
        };
        let got = claim.jobs.len();
        for job in claim.jobs {
            // Room was checked above and this task is the only sender.
            if buffer.send(job).await.is_err() {
                return;
            }
        }
        // Busy and with room for more: keep the promise to poll alive. A full
        // buffer lets it lapse, so enqueues notify the other processes again.
        let now = tokio::time::Instant::now();
        let renew = polling_until.is_none_or(|until| until.saturating_duration_since(now) < BUSY_WINDOW / 2);
        if got > 0 && buffer.capacity() > 0 && renew {
            match claims::promise_polling(&pool, queue.as_str(), BUSY_WINDOW).await {
                // Counted from after the answer: never earlier than the promise.
                Ok(remaining) => polling_until = Some(tokio::time::Instant::now() + remaining),
                Err(error) => tracing::warn!(%queue, %error, "promising to poll failed"),
            }
        }
        if got == want {
            continue;
        }
        let mut wait = match claim.next_run_at {
            Some(at) => (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO).min(settings.poll),
            None => settings.poll,
        };
        match polling_until {
            Some(until) if tokio::time::Instant::now() < until => wait = wait.min(BUSY_POLL),
            _ => polling_until = None,
        }
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Writes outcomes in batches: whatever arrived while the previous batch was
/// being written goes in the next one (one statement per kind), so the cost
/// per job falls as load rises. Ends when every sender is gone.
async fn acknowledge(engine: Engine, queue: Queue, mut acks: mpsc::UnboundedReceiver<Ack>) {
    let keep = !engine.settings().retention.is_zero();
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while acks.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let mut completed = Vec::new();
        let mut failed = Vec::new();
        let mut released_started = Vec::new();
        let mut released_unstarted = Vec::new();
        let mut flushes = Vec::new();
        for ack in batch.drain(..) {
            match ack {
                Ack::Completed(id) => completed.push(id),
                Ack::Failed(failure) => failed.push(failure),
                Ack::Released { id, started: true } => released_started.push(id),
                Ack::Released { id, started: false } => released_unstarted.push(id),
                Ack::Flush(done) => flushes.push(done),
            }
        }
        let (pool, worker) = (engine.pool(), engine.worker_id());
        if !completed.is_empty() {
            persist(&engine, "completions", || claims::complete(pool, worker, &completed, keep)).await;
        }
        if !failed.is_empty() {
            persist(&engine, "failures", || claims::fail(pool, worker, &failed)).await;
            // A retry due soon must not wait for the backstop poll.
            engine.wakeups().wake(queue);
        }
        if !released_started.is_empty() {
            persist(&engine, "hand-backs", || claims::release(pool, worker, &released_started, true)).await;
        }
        if !released_unstarted.is_empty() {
            persist(&engine, "hand-backs", || claims::release(pool, worker, &released_unstarted, false)).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Retries a write while the database is unreachable, for up to the rescue
/// time: after that, other processes will have rescued the jobs anyway.
async fn persist<F, Fut>(engine: &Engine, what: &str, mut write: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + engine.settings().rescue_after;
    loop {
        match write().await {
            Ok(()) => return,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, what, "writing job outcomes failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                tracing::error!(%error, what, "giving up writing job outcomes; the jobs will be rescued");
                return;
            }
        }
    }
}

/// Records each handler call's outcome: done, retried after a backoff, or dead
/// (out of attempts, or the handler returned apalis's `AbortError`).
#[derive(Clone)]
pub struct AckLayer {
    acks: mpsc::UnboundedSender<Ack>,
    backoff: Backoff,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService { inner, acks: self.acks.clone(), backoff: self.backoff }
    }
}

#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    acks: mpsc::UnboundedSender<Ack>,
    backoff: Backoff,
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let ctx = task.ctx().clone();
        let id = ctx.task_id().and_then(TaskId::as_int).map(|id| id as i64);
        let mut guard = RunGuard { id, acks: self.acks.clone() };
        let backoff = self.backoff;
        let run = self.inner.call(task);
        Box::pin(async move {
            let result = run.await.map_err(Into::into);
            if let Some(id) = guard.id.take() {
                let ack = match &result {
                    Ok(_) => Ack::Completed(id),
                    Err(error) => {
                        let attempt = ctx.attempt();
                        let out_of_attempts = ctx.max_attempts().is_some_and(|max| attempt >= max);
                        let permanent = error.downcast_ref::<AbortError>().is_some();
                        let retry_in = (!permanent && !out_of_attempts)
                            .then(|| backoff.delay_jittered(u32::try_from(attempt).unwrap_or(u32::MAX)));
                        Ack::Failed(Failure { id, retry_in, error: error.to_string() })
                    }
                };
                let _ = guard.acks.send(ack);
            }
            result
        })
    }
}

/// Hands a run back if its future is dropped before finishing (shutdown
/// timeout, panic), instead of leaving the job held until the process exits.
struct RunGuard {
    id: Option<i64>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let _ = self.acks.send(Ack::Released { id, started: true });
        }
    }
}
