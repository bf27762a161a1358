//! Delivers outbox messages (queues `otp` and `notify`) through the configured
//! SMS or email provider.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, RetryAfterError};
use lockers_core::db::DbError;
use lockers_core::jobs::DeliverNotification;
use lockers_core::messaging::outbox::{self, Channel};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;

use crate::providers::{Email, SendError};
use crate::{WorkerState, failure};
use lockers_core::telemetry::metrics::name;

/// One delivery attempt, at most once per message: the message is claimed
/// (`sending`) and that claim committed before the provider is called, so a
/// second run of the job (rescued, timed out, duplicated) finds it claimed and
/// sends nothing. No database connection is held during the provider call:
/// each statement takes one from the pool and gives it back.
pub async fn deliver_notification(
    job: DeliverNotification,
    state: Data<Arc<WorkerState>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let Some(message) = state.outbox.claim(job.notification_id).await? else {
        tracing::debug!(notification_id = %job.notification_id, "notification already sent, claimed or closed");
        return Ok(());
    };
    let (provider, result) = match message.channel() {
        Some(Channel::Sms) => {
            let sms = &state.providers.sms;
            (sms.name(), sms.send(&message.recipient, &message.body).await)
        }
        Some(Channel::Email) => {
            let provider = &state.providers.email;
            let email = Email {
                subject: message.subject.as_deref().unwrap_or("Lockers"),
                text: &message.body,
                html: message.html_body.as_deref(),
            };
            (provider.name(), provider.send(&message.recipient, &email).await)
        }
        None => {
            let error = format!("unknown channel `{}`", message.channel);
            outbox::mark_attempt_failed(&state.pool, message.id, "none", &error, true).await.map_err(failure)?;
            return Err(AbortError::new(error).into());
        }
    };
    match result {
        Ok(receipt) => {
            let sent = outbox::Sent { id: message.id, provider, provider_message_id: receipt.provider_message_id };
            state.outbox.record(sent).await?;
            count_sent(&message);
            tracing::info!(notification_id = %message.id, kind = %message.kind, provider, "notification sent");
            Ok(())
        }
        Err(SendError::Transient(error)) => retry_or_give_up(&state, &message, provider, attempt, error, None).await,
        // The engine holds the next run back until the provider's wait is over.
        Err(SendError::RetryAfter(error, wait)) => {
            retry_or_give_up(&state, &message, provider, attempt, error, Some(wait)).await
        }
        // Maybe sent: never resent by itself (a code twice is worse than not
        // at all; the user can ask for a new one), left for operators to see.
        Err(SendError::Unknown(error)) => {
            outbox::mark_unknown(&state.pool, message.id, provider, &error).await.map_err(failure)?;
            count_failed(&message);
            tracing::warn!(notification_id = %message.id, provider, %error, "notification outcome unknown; not resent");
            Err(AbortError::new(error).into())
        }
        Err(SendError::Permanent(error)) => {
            outbox::mark_attempt_failed(&state.pool, message.id, provider, &error, true).await.map_err(failure)?;
            count_failed(&message);
            tracing::warn!(notification_id = %message.id, provider, %error, "notification refused by provider");
            Err(AbortError::new(error).into())
        }
    }
}

/// A message the provider accepted; one carrying a code also counts as a code sent.
fn count_sent(message: &outbox::Pending) {
    let channel = message.channel.clone();
    metrics::counter!(name::NOTIFICATIONS_SENT, "channel" => channel.clone()).increment(1);
    if message.sensitive {
        metrics::counter!(name::CODES_SENT, "channel" => channel).increment(1);
    }
}

/// A message given up: refused, out of attempts, or its outcome unknown.
fn count_failed(message: &outbox::Pending) {
    metrics::counter!(name::NOTIFICATIONS_FAILED, "channel" => message.channel.clone()).increment(1);
}

/// Records a failed attempt worth repeating: the job runs again (after `wait`
/// when the provider named one, else after its backoff) unless this was its
/// last attempt, which fails the message for good.
async fn retry_or_give_up(
    state: &WorkerState,
    message: &outbox::Pending,
    provider: &str,
    attempt: Attempt,
    error: String,
    wait: Option<Duration>,
) -> Result<(), BoxDynError> {
    let give_up = attempt.current() >= message.queue().max_attempts() as usize;
    outbox::mark_attempt_failed(&state.pool, message.id, provider, &error, give_up).await.map_err(failure)?;
    if give_up {
        count_failed(message);
    }
    let wait_secs = wait.map(|w| w.as_secs_f64());
    tracing::warn!(notification_id = %message.id, provider, %error, give_up, ?wait_secs, "notification attempt failed");
    Err(match (give_up, wait) {
        (true, _) => AbortError::new(error).into(),
        (false, Some(wait)) => RetryAfterError::new(error, wait).into(),
        (false, None) => error.into(),
    })
}

/// How long a run keeps at one statement while the database is unreachable
/// (well inside the shortest queue timeout, 30 s for codes).
const PATIENCE: Duration = Duration::from_secs(15);

/// Runs `statement` again while the database cannot be reached, up to
/// [`PATIENCE`]: every statement of a delivery is safe to repeat, and giving up
/// early costs more than waiting (a lost claim leaves the message unsent, a
/// lost outcome leaves a sent message looking abandoned).
async fn patiently<T, F, Fut>(what: &str, id: Uuid, statement: F) -> Result<T, DbError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let started = Instant::now();
    let mut wait = Duration::from_millis(200);
    loop {
        match statement().await {
            Err(e) if e.is_unavailable() && started.elapsed() + wait < PATIENCE => {
                tracing::warn!(notification_id = %id, error = %e, cause = %e.source, "{what} unanswered; asking again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            outcome => return outcome,
        }
    }
}

/// The delivery workers' two statements about every message, each written
/// in batches: whatever arrives while the previous batch is being written goes
/// in the next statement, so a busy worker pays one round trip and one commit
/// for many messages (the engine batches its acknowledgements the same way)
/// and an idle one waits for no batch to fill.
///
/// - Claims (before the provider call) are durable: a claim is what stops a
///   second send. A claim whose answer was lost is asked again with the same
///   run token, which returns it (see `outbox::claim`).
/// - Outcomes of accepted sends do not wait for the WAL flush
///   (`synchronous_commit=off`): a `sent` lost in a database crash leaves the
///   message `sending`, which the abandoned-claim sweep turns into `unknown`
///   (never resent, the code blanked), so the loss costs an accurate status,
///   never a second send.
#[derive(Clone)]
pub struct OutboxLog {
    claims: Batcher<outbox::Claim, Option<outbox::Pending>>,
    sent: Batcher<outbox::Sent, ()>,
}

/// The largest batch in one statement.
const BATCH: usize = 256;

impl OutboxLog {
    /// Starts the two writers, each on its own connection to `pool`'s
    /// database; they end when the last clone of the log is dropped.
    pub fn start(pool: &PgPool) -> Self {
        // No sequential scans: a generic plan made while `notifications` was
        // small scanned it whole, and these long-lived connections kept that
        // plan as the table grew (measured: 2.5 ms a batch, a quarter of the
        // exchange benchmark's statement time, against 0.2 ms). Both
        // statements find their rows by primary key, and stay prepared.
        let connection = |durable: bool| {
            let commit = if durable { "on" } else { "off" };
            let options =
                (*pool.connect_options()).clone().options([("synchronous_commit", commit), ("enable_seqscan", "off")]);
            PgPoolOptions::new().max_connections(1).acquire_timeout(Duration::from_secs(5)).connect_lazy_with(options)
        };
        let own = connection(true);
        let claims = Batcher::start(move |claims: Vec<outbox::Claim>| {
            let own = own.clone();
            async move {
                let first = claims.first().map_or(Uuid::nil(), |c| c.id);
                let won = patiently("claim", first, || outbox::claim_many(&own, &claims)).await?;
                Ok(won.into_iter().map(|(_, pending)| pending).collect())
            }
        });
        let own = connection(false);
        let sent = Batcher::start(move |sent: Vec<outbox::Sent>| {
            let own = own.clone();
            async move {
                let first = sent.first().map_or(Uuid::nil(), |s| s.id);
                patiently("outcome", first, || outbox::mark_sent_many(&own, &sent)).await?;
                Ok(vec![(); sent.len()])
            }
        });
        Self { claims, sent }
    }

    /// Claims message `id` for this run (a token of its own) with the next
    /// batch: the message, or `None` when it is not pending.
    async fn claim(&self, id: Uuid) -> Result<Option<outbox::Pending>, BoxDynError> {
        self.claims.submit(outbox::Claim { id, token: Uuid::new_v4() }).await
    }

    /// Records `sent` with the next batch and returns once that batch is written.
    async fn record(&self, sent: outbox::Sent) -> Result<(), BoxDynError> {
        self.sent.submit(sent).await
    }
}

/// One batched statement: `write` takes a batch and answers one result per
/// entry, in order, or one error for all of them.
struct Batcher<T, R> {
    queue: mpsc::UnboundedSender<(T, oneshot::Sender<Result<R, String>>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    fn start<F, Fut>(write: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, DbError>> + Send,
    {
        let (queue, mut arrivals) = mpsc::unbounded_channel::<(T, oneshot::Sender<Result<R, String>>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while arrivals.recv_many(&mut batch, BATCH).await > 0 {
                let (entries, waiting): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                let count = entries.len();
                match write(entries).await {
                    Ok(results) if results.len() == count => {
                        for (done, result) in waiting.into_iter().zip(results) {
                            // The handler may have been stopped meanwhile: nobody to tell.
                            let _ = done.send(Ok(result));
                        }
                    }
                    outcome => {
                        let error = match outcome {
                            Err(e) => failure(e).to_string(),
                            Ok(_) => "a batched statement answered for the wrong number of entries".to_owned(),
                        };
                        for done in waiting {
                            let _ = done.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Adds `entry` to the next batch and returns its result once that batch is written.
    async fn submit(&self, entry: T) -> Result<R, BoxDynError> {
        let (done, written) = oneshot::channel();
        self.queue.send((entry, done)).map_err(|_| "the batch writer has stopped")?;
        match written.await {
            Ok(outcome) => outcome.map_err(Into::into),
            Err(_) => Err("the batch writer has stopped".into()),
        }
    }
}
