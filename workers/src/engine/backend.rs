//! `JobBackend`: the apalis `Backend` over the `jobs` table, and `AckLayer`,
//! the tower layer apalis places around every handler call to record its
//! outcome.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::engine::claims::{self, Claimed, Failure, Held};
use apalis::prelude::{AbortError, Backend, BoxDynError, RetryAfterError, Task, TaskBuilder, TaskId, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use futures::FutureExt;
use futures::future::BoxFuture;
use lockers_core::db::DbError;
use lockers_core::jobs::Queue;
use lockers_core::jobs::backoff::Backoff;
use lockers_core::telemetry::metrics::name;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tower::{Layer, Service};

use super::{Engine, EngineSettings, Identity, pause};

/// Most outcomes written by one acknowledgement round.
const ACK_BATCH: usize = 1024;

/// While a queue is busy its fetcher polls this often instead of waiting for
/// NOTIFY, which enqueues then leave out (see migrations/0004_job_queue_polling.sql).
const BUSY_POLL: Duration = Duration::from_millis(5);

/// How long a fetcher promises to keep polling after it last found work; renewed
/// at half of it while jobs keep coming.
const BUSY_WINDOW: Duration = Duration::from_millis(250);

/// The shortest idle wait: the next run time comes from the database's clock,
/// and a host clock out of step with it must not make a fetcher spin.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// A run that did not start because the job is no longer this process's: it
/// was rescued (the process was presumed dead) and runs elsewhere. Nothing is
/// recorded for it.
#[derive(Debug, thiserror::Error)]
#[error("job {0} was rescued from this process; not running or acknowledging it")]
pub struct RunLost(pub i64);

/// A handler that ran past its queue's timeout; the run was cancelled.
#[derive(Debug, thiserror::Error)]
#[error("the run exceeded its timeout of {} s and was cancelled", .0.as_secs_f64())]
pub struct RunTimedOut(pub Duration);

/// A handler that panicked; the panic was caught and counted as a failed attempt.
#[derive(Debug, thiserror::Error)]
#[error("the handler panicked: {0}")]
pub struct RunPanicked(pub String);

#[derive(Debug, thiserror::Error)]
pub enum JobBackendError {
    #[error("the job acknowledger stopped before flushing")]
    AcknowledgerGone,
}

/// What became of one claimed job.
#[derive(Debug)]
enum Ack {
    Completed(Held),
    Failed(Failure),
    /// Back to ready: `started` runs count as attempts, prefetched ones do not.
    Released {
        run: Held,
        started: bool,
    },
    /// Answered once everything sent before it is written.
    Flush(oneshot::Sender<()>),
}

/// A claimed job in the prefetch buffer, with the identity that claimed it.
struct Fetched {
    job: Claimed,
    identity: Arc<Identity>,
}

impl Fetched {
    fn held(&self) -> Held {
        Held { id: self.job.id, worker: self.identity.id.clone(), attempts: self.job.attempts }
    }
}

/// Travels with each apalis task from the buffer to `AckService`: which run of
/// which job it is, and who holds it.
#[derive(Debug, Clone)]
struct Run {
    held: Held,
    max_attempts: i32,
    identity: Arc<Identity>,
    /// The HTTP request that enqueued the job, carried into the run's log lines.
    request_id: Option<String>,
    /// Seconds from the job's due time to its claim.
    waited_secs: f64,
}

/// One worker's jobs of one queue. Tasks start on the first poll: a backend
/// built but never run claims nothing.
pub struct JobBackend<Args> {
    engine: Engine,
    queue: Queue,
    jobs: Option<mpsc::Receiver<Fetched>>,
    acks: mpsc::UnboundedSender<Ack>,
    starts: mpsc::UnboundedSender<StartRequest>,
    idle: Option<(mpsc::Sender<Fetched>, mpsc::UnboundedReceiver<Ack>, mpsc::UnboundedReceiver<StartRequest>)>,
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
        let (start_tx, start_rx) = mpsc::unbounded_channel();
        let stop_fetcher = CancellationToken::new();
        Self {
            engine,
            queue,
            jobs: Some(job_rx),
            acks: ack_tx,
            starts: start_tx,
            idle: Some((job_tx, ack_rx, start_rx)),
            fetcher: None,
            _fetcher_guard: stop_fetcher.clone().drop_guard(),
            stop_fetcher,
            closing: None,
            _args: PhantomData,
        }
    }

    fn start(&mut self) {
        if let Some((job_tx, ack_rx, start_rx)) = self.idle.take() {
            let wake = self.engine.wakeups().subscribe(self.queue);
            let fetcher = fetch(self.engine.clone(), self.queue, job_tx, wake, self.stop_fetcher.clone());
            self.fetcher = Some(tokio::spawn(fetcher));
            tokio::spawn(acknowledge(self.engine.clone(), self.queue, ack_rx));
            let lease = self.engine.settings().lease(self.queue);
            tokio::spawn(start_runs(self.engine.clone(), lease, start_rx));
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
                while let Ok(fetched) = jobs.try_recv() {
                    let _ = acks.send(Ack::Released { run: fetched.held(), started: false });
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
            let Some(fetched) = std::task::ready!(jobs.poll_recv(cx)) else { return Poll::Ready(None) };
            // Claimed under an identity found rescued since: the job runs
            // elsewhere; drop it without a word to the database.
            if fetched.identity.is_fenced() {
                continue;
            }
            let job = &fetched.job;
            match serde_json::from_str::<Args>(&job.payload) {
                Ok(args) => {
                    let run = Run {
                        held: fetched.held(),
                        max_attempts: job.max_attempts,
                        identity: fetched.identity.clone(),
                        request_id: job.request_id.clone(),
                        waited_secs: job.waited_secs,
                    };
                    let task = TaskBuilder::new(args)
                        .task_id(TaskId::from_int(job.id as u64))
                        // apalis counts the run that is starting; the claim already did.
                        .attempt(job.attempts.saturating_sub(1) as usize)
                        .max_attempts(job.max_attempts as usize)
                        .data(run)
                        .build();
                    return Poll::Ready(Some(Ok(task)));
                }
                // A payload no handler can read will never succeed: dead, and the
                // worker carries on (apalis would stop the worker on a decode error).
                Err(error) => {
                    tracing::error!(job_id = job.id, queue = %self.queue, %error, "job payload does not decode");
                    metrics::counter!(name::JOBS_DEAD, "queue" => self.queue.as_str()).increment(1);
                    let failure = Failure {
                        run: fetched.held(),
                        retry_in: None,
                        error: format!("payload does not decode: {error}"),
                    };
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
        let settings = self.engine.settings();
        AckLayer {
            acks: self.acks.clone(),
            starts: self.starts.clone(),
            backoff: settings.backoff,
            timeout: settings.timeouts.get(self.queue),
            queue: self.queue,
        }
    }
}

/// Claims due jobs into the buffer whenever it has room; when none are due,
/// sleeps until a wake-up, the next job's run time, or the backstop poll.
async fn fetch(
    engine: Engine,
    queue: Queue,
    buffer: mpsc::Sender<Fetched>,
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
        let identity = engine.identity();
        let claim = match claims::claim(&pool, queue.as_str(), &identity.id, want as i64).await {
            Ok(claim) => claim,
            Err(error) => {
                tracing::warn!(%queue, %error, cause = %error.source, "claiming jobs failed");
                if pause(&stop, settings.poll).await {
                    return;
                }
                continue;
            }
        };
        if !claim.registered {
            // Presumed dead and rescued: claim again under a fresh identity.
            engine.fence(&identity, super::Fence::Rescued).await;
            continue;
        }
        let got = claim.jobs.len();
        for job in claim.jobs {
            // Room was checked above and this task is the only sender.
            if buffer.send(Fetched { job, identity: identity.clone() }).await.is_err() {
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
                Err(error) => tracing::warn!(%queue, %error, cause = %error.source, "promising to poll failed"),
            }
        }
        if got == want {
            continue;
        }
        let mut wait = idle_wait(claim.next_due_in, settings.poll);
        match polling_until {
            Some(until) if tokio::time::Instant::now() < until => wait = wait.min(BUSY_POLL),
            _ => polling_until = None,
        }
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// How long an idle fetcher sleeps: until the next job is due (as the database
/// counts it), at most the backstop poll, at least `MIN_WAIT`.
fn idle_wait(next_due_in: Option<Duration>, poll: Duration) -> Duration {
    next_due_in.map_or(poll, |due| due.min(poll)).max(MIN_WAIT)
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
                Ack::Completed(run) => completed.push(run),
                Ack::Failed(failure) => failed.push(failure),
                Ack::Released { run, started: true } => released_started.push(run),
                Ack::Released { run, started: false } => released_unstarted.push(run),
                Ack::Flush(done) => flushes.push(done),
            }
        }
        let (pool, backoff) = (engine.pool(), engine.settings().backoff);
        if !completed.is_empty() {
            persist(&engine, "completions", || claims::complete(pool, &completed, keep)).await;
        }
        if !failed.is_empty() {
            persist(&engine, "failures", || claims::fail(pool, &failed)).await;
            // A retry due soon must not wait for the backstop poll.
            engine.wakeups().wake(queue);
        }
        if !released_started.is_empty() {
            persist(&engine, "hand-backs", || claims::release(pool, &released_started, true, backoff)).await;
        }
        if !released_unstarted.is_empty() {
            persist(&engine, "hand-backs", || claims::release(pool, &released_unstarted, false, backoff)).await;
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
    Fut: Future<Output = Result<(), DbError>>,
{
    let deadline = tokio::time::Instant::now() + engine.settings().rescue_after;
    loop {
        match write().await {
            Ok(()) => return,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, cause = %error.source, what, "writing job outcomes failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                tracing::error!(%error, cause = %error.source, what, "giving up writing job outcomes; the jobs will be rescued");
                return;
            }
        }
    }
}

/// A run asking to start: answered `Ok(true)` when the job is still this
/// process's (its lease is then set), `Ok(false)` when it was rescued.
struct StartRequest {
    run: Held,
    reply: oneshot::Sender<Result<bool, String>>,
}

/// The start check of every run of one queue, batched: the requests that
/// arrive while one statement is in flight go together in the next, so a busy
/// queue pays one round trip per batch rather than per job, and an idle one
/// waits for no batch to fill.
async fn start_runs(engine: Engine, lease: Duration, mut requests: mpsc::UnboundedReceiver<StartRequest>) {
    const MAX_BATCH: usize = 512;
    let mut batch = Vec::new();
    while let Some(first) = requests.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let runs: Vec<Held> = batch.iter().map(|r| r.run.clone()).collect();
        match claims::start_many(engine.pool(), &runs, lease).await {
            Ok(started) => {
                let started: std::collections::HashSet<i64> = started.into_iter().collect();
                for request in batch.drain(..) {
                    let _ = request.reply.send(Ok(started.contains(&request.run.id)));
                }
            }
            Err(error) => {
                let text = crate::failure(error).to_string();
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(text.clone()));
                }
            }
        }
    }
}

/// Wraps every handler call: checks right before the run that the job is still
/// this process's (and sets its lease), cancels the run at the queue's timeout
/// or when the process is found rescued, turns a panic into a failed attempt,
/// and records the outcome: done, retried after a backoff, or dead (out of
/// attempts, or the handler returned apalis's `AbortError`).
#[derive(Clone)]
pub struct AckLayer {
    acks: mpsc::UnboundedSender<Ack>,
    starts: mpsc::UnboundedSender<StartRequest>,
    backoff: Backoff,
    timeout: Duration,
    queue: Queue,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    layer: AckLayer,
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let run = task.ctx().data().get::<Run>().cloned();
        // Nothing runs until this future is polled, after the start check.
        let handler = self.inner.call(task);
        let layer = self.layer.clone();
        let Some(run) = run else {
            // Not from a JobBackend: nothing of ours to check or record.
            return Box::pin(async move { handler.await.map_err(Into::into) });
        };
        // Every line the run logs names the job and the request that enqueued it.
        let span = tracing::info_span!(
            "job",
            queue = %layer.queue,
            job_id = run.held.id,
            attempt = run.held.attempts,
            request_id = run.request_id.as_deref().unwrap_or("-"),
        );
        Box::pin(tracing::Instrument::instrument(
            async move {
                if run.identity.is_fenced() {
                    return Err(RunLost(run.held.id).into());
                }
                let (reply, started) = oneshot::channel();
                let _ = layer.starts.send(StartRequest { run: run.held.clone(), reply });
                let checked = started.await.unwrap_or_else(|_| Err("the job starter stopped".into()));
                match checked {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job_id = run.held.id, "a prefetched job was rescued before it started; skipped");
                        return Err(RunLost(run.held.id).into());
                    }
                    Err(error) => {
                        // Not started: hand it back without counting an attempt.
                        let _ = layer.acks.send(Ack::Released { run: run.held.clone(), started: false });
                        return Err(error.into());
                    }
                }
                let queue = layer.queue.as_str();
                metrics::counter!(name::JOBS_STARTED, "queue" => queue).increment(1);
                metrics::histogram!(name::JOB_START_DELAY, "queue" => queue).record(run.waited_secs);
                let mut guard = RunGuard { run: Some(run.held.clone()), acks: layer.acks.clone() };
                let guarded = tokio::time::timeout(layer.timeout, AssertUnwindSafe(handler).catch_unwind());
                let result: Result<S::Response, BoxDynError> = tokio::select! {
                    biased;
                    () = run.identity.fenced.cancelled() => {
                        // Rescued while running: the job runs elsewhere. Stop and record nothing.
                        guard.run = None;
                        tracing::warn!(job_id = run.held.id, "run cancelled: this process was presumed dead");
                        return Err(RunLost(run.held.id).into());
                    }
                    outcome = guarded => match outcome {
                        Ok(Ok(result)) => result.map_err(Into::into),
                        Ok(Err(panic)) => Err(RunPanicked(panic_message(panic.as_ref())).into()),
                        Err(_) => Err(RunTimedOut(layer.timeout).into()),
                    },
                };
                let Some(held) = guard.run.take() else { return result };
                let ack = match &result {
                    Ok(_) => {
                        metrics::counter!(name::JOBS_SUCCEEDED, "queue" => queue).increment(1);
                        Ack::Completed(held)
                    }
                    Err(error) => {
                        if let Some(panic) = error.downcast_ref::<RunPanicked>() {
                            tracing::error!(job_id = held.id, %panic, "job handler panicked");
                        } else {
                            // Handlers spell out what failed (`crate::failure`).
                            tracing::warn!(job_id = held.id, attempt = held.attempts, %error, "job run failed");
                        }
                        let out_of_attempts = held.attempts >= run.max_attempts;
                        let permanent = error.downcast_ref::<AbortError>().is_some();
                        let attempt = u32::try_from(held.attempts).unwrap_or(u32::MAX);
                        // A handler that was told when to come back (`Retry-After`)
                        // says so with apalis's `RetryAfterError`.
                        let asked = error.downcast_ref::<RetryAfterError>().map(RetryAfterError::get_duration);
                        let retry_in = (!permanent && !out_of_attempts).then(|| match asked {
                            Some(hint) => layer.backoff.delay_after_jittered(attempt, hint),
                            None => layer.backoff.delay_jittered(attempt),
                        });
                        metrics::counter!(name::JOBS_FAILED, "queue" => queue).increment(1);
                        let outcome = if retry_in.is_some() { name::JOBS_RETRIED } else { name::JOBS_DEAD };
                        metrics::counter!(outcome, "queue" => queue).increment(1);
                        Ack::Failed(Failure { run: held, retry_in, error: error.to_string() })
                    }
                };
                let _ = layer.acks.send(ack);
                result
            },
            span,
        ))
    }
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

/// Hands a run back if its future is dropped before finishing (shutdown
/// timeout), instead of leaving the job held until the process exits. The run
/// counts as an attempt (with its backoff; dead when out of attempts).
struct RunGuard {
    run: Option<Held>,
    acks: mpsc::UnboundedSender<Ack>,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            let _ = self.acks.send(Ack::Released { run, started: true });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idle_wait_follows_the_database_clock_with_a_floor_and_a_ceiling() {
        let poll = Duration::from_secs(1);
        // Due in 300 ms by the database's clock, whatever the host clock says.
        assert_eq!(idle_wait(Some(Duration::from_millis(300)), poll), Duration::from_millis(300));
        // Already due (or the clocks disagree): a short pause, never a spin.
        assert_eq!(idle_wait(Some(Duration::ZERO), poll), MIN_WAIT);
        assert_eq!(idle_wait(Some(Duration::from_micros(10)), poll), MIN_WAIT);
        // Far away or nothing scheduled: the backstop poll.
        assert_eq!(idle_wait(Some(Duration::from_secs(3600)), poll), poll);
        assert_eq!(idle_wait(None, poll), poll);
    }
}
