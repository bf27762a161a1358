//! The notification outbox: every message is a row first, then a job that
//! delivers it, both written in the caller's transaction.

use chrono::{DateTime, Utc};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::accounts::contact::{Contact, Email, Phone};
use crate::db::{DbError, During};
use crate::jobs::{self, DeliverNotification, EnqueueError, Queue};
use crate::messaging::otp::{Code, Purpose};
use crate::messaging::templates::{self, RenderError, Rendered};

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Sms(Phone),
    Email(Email),
}

impl From<Contact> for Recipient {
    fn from(contact: Contact) -> Self {
        match contact {
            Contact::Email(e) => Recipient::Email(e),
            Contact::Phone(p) => Recipient::Sms(p),
        }
    }
}

impl Recipient {
    pub fn channel(&self) -> Channel {
        match self {
            Recipient::Sms(_) => Channel::Sms,
            Recipient::Email(_) => Channel::Email,
        }
    }

    pub fn address(&self) -> &str {
        match self {
            Recipient::Sms(p) => p.as_str(),
            Recipient::Email(e) => e.as_str(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

/// A message to send: its kind names its templates (see
/// [`templates`]), rendered with `context` for the recipient's channel when
/// it is queued. `sensitive` marks messages that carry a one-time code: they
/// travel on the `otp` queue and their bodies are blanked in the outbox once
/// delivered.
#[derive(Debug, Clone)]
pub struct Message {
    pub to: Recipient,
    /// What the message is about, e.g. `otp_login`; its templates' name, kept for operators.
    pub kind: &'static str,
    pub context: Value,
    pub sensitive: bool,
}

impl Message {
    /// The SMS, or the email's subject, text and HTML.
    pub fn render(&self) -> Result<Rendered, RenderError> {
        templates::render(self.kind, self.to.channel(), &self.context)
    }
}

/// The message carrying a one-time code for `purpose`.
pub fn one_time_code(to: Recipient, purpose: Purpose, code: &Code) -> Message {
    let kind = match purpose {
        Purpose::Verify => "otp_verify",
        Purpose::Login => "otp_login",
        Purpose::Reset => "otp_reset",
        Purpose::Pickup => "otp_pickup",
        Purpose::Return => "otp_return",
    };
    let minutes = crate::messaging::otp::VALIDITY.as_secs() / 60;
    Message { to, kind, context: context! { code => code.expose(), minutes }, sensitive: true }
}

/// Writes the outbox row and enqueues its delivery in the caller's transaction:
/// if the transaction rolls back, nothing is ever sent.
pub async fn queue(conn: &mut PgConnection, message: &Message) -> Result<Uuid, EnqueueError> {
    let id = Uuid::now_v7();
    let rendered = message.render()?;
    sqlx::query(
        "INSERT INTO notifications (id, channel, recipient, kind, subject, body, html_body, sensitive)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(message.to.channel().as_str())
    .bind(message.to.address())
    .bind(message.kind)
    .bind(&rendered.subject)
    .bind(&rendered.text)
    .bind(&rendered.html)
    .bind(message.sensitive)
    .execute(&mut *conn)
    .await
    .during("write a notification")?;
    jobs::enqueue(conn, queue_for(message.sensitive), &DeliverNotification { notification_id: id }).await?;
    Ok(id)
}

/// Messages with codes ride the `otp` queue, the rest `notify`.
pub fn queue_for(sensitive: bool) -> Queue {
    if sensitive { Queue::Otp } else { Queue::Notify }
}

/// A pending message as the delivery worker reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pending {
    pub id: Uuid,
    pub channel: String,
    pub recipient: String,
    pub kind: String,
    pub subject: Option<String>,
    /// The SMS, or the email's text part.
    pub body: String,
    /// The email's HTML part (none for SMS, and for emails queued before templates).
    pub html_body: Option<String>,
    pub sensitive: bool,
}

impl Pending {
    pub fn channel(&self) -> Option<Channel> {
        match self.channel.as_str() {
            "sms" => Some(Channel::Sms),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }

    pub fn queue(&self) -> Queue {
        queue_for(self.sensitive)
    }
}

/// Claims a pending message for one delivery attempt (`pending` ->
/// `sending`), in its own statement and so its own transaction, committed
/// before the provider is called. `None` when the message is not pending: sent,
/// failed, unknown, or being sent by another run of its job, which therefore
/// never sends it again. `token` names this run: asking again with it after a
/// lost answer returns the run's own claim (nothing was sent in between, since
/// the run itself was waiting for the answer).
pub async fn claim<'e>(db: impl PgExecutor<'e>, id: Uuid, token: Uuid) -> Result<Option<Pending>, DbError> {
    sqlx::query_as(
        "UPDATE notifications SET status = 'sending', claimed_at = now(), claim_token = $2
         WHERE id = $1 AND (status = 'pending' OR (status = 'sending' AND claim_token = $2))
         RETURNING id, channel, recipient, kind, subject, body, html_body, sensitive",
    )
    .bind(id)
    .bind(token)
    .fetch_optional(db)
    .await
    .during("claim a notification for delivery")
}

/// Records a delivery the provider accepted. Also from `unknown`: the truth
/// beats the guess the abandoned-claim sweep made.
pub async fn mark_sent<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    provider: &str,
    provider_message_id: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE notifications
         SET status = 'sent', attempts = attempts + 1, provider = $2, provider_message_id = $3,
             sent_at = now(), last_error = NULL,
             body = CASE WHEN sensitive THEN '' ELSE body END,
             html_body = CASE WHEN sensitive THEN NULL ELSE html_body END
         WHERE id = $1 AND status IN ('sending', 'unknown')",
    )
    .bind(id)
    .bind(provider)
    .bind(provider_message_id)
    .execute(db)
    .await
    .map(|_| ())
    .during("record a sent notification")
}

/// One accepted send, for [`mark_sent_many`].
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: Uuid,
    pub provider: &'static str,
    pub provider_message_id: Option<String>,
}

/// [`mark_sent`] for many messages in one statement (and so one commit): the
/// delivery workers record the outcomes that arrive while the previous batch
/// is written together. Same rules per row as [`mark_sent`].
pub async fn mark_sent_many<'e>(db: impl PgExecutor<'e>, sent: &[Sent]) -> Result<(), DbError> {
    let ids: Vec<Uuid> = sent.iter().map(|s| s.id).collect();
    let providers: Vec<&str> = sent.iter().map(|s| s.provider).collect();
    let receipts: Vec<Option<&str>> = sent.iter().map(|s| s.provider_message_id.as_deref()).collect();
    sqlx::query(
        "UPDATE notifications n
         SET status = 'sent', attempts = n.attempts + 1, provider = s.provider, provider_message_id = s.receipt,
             sent_at = now(), last_error = NULL,
             body = CASE WHEN n.sensitive THEN '' ELSE n.body END,
             html_body = CASE WHEN n.sensitive THEN NULL ELSE n.html_body END
         FROM (SELECT DISTINCT ON (id) id, provider, receipt
               FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, provider, receipt)) AS s
         WHERE n.id = s.id AND n.id = ANY($1) AND n.status IN ('sending', 'unknown')",
    )
    .bind(&ids)
    .bind(&providers)
    .bind(&receipts)
    .execute(db)
    .await
    .map(|_| ())
    .during("record sent notifications")
}

/// Records a failed attempt of a claimed message: back to `pending` for the
/// job's next run, or, with `give_up`, failed for good (a code is blanked).
pub async fn mark_attempt_failed<'e>(
    db: impl PgExecutor<'e>,
    id: Uuid,
    provider: &str,
    error: &str,
    give_up: bool,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE notifications
         SET attempts = attempts + 1, provider = $2, last_error = $3,
             status = CASE WHEN $4 THEN 'failed' ELSE 'pending' END,
             body = CASE WHEN $4 AND sensitive THEN '' ELSE body END,
             html_body = CASE WHEN $4 AND sensitive THEN NULL ELSE html_body END
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(provider)
    .bind(error)
    .bind(give_up)
    .execute(db)
    .await
    .map(|_| ())
    .during("record a failed delivery attempt")
}

/// Records an attempt whose outcome is unknown: the provider got the request
/// and the answer never came. `unknown` is never resent by itself; a code is
/// blanked.
pub async fn mark_unknown<'e>(db: impl PgExecutor<'e>, id: Uuid, provider: &str, error: &str) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE notifications
         SET attempts = attempts + 1, provider = $2, last_error = $3, status = 'unknown',
             body = CASE WHEN sensitive THEN '' ELSE body END,
             html_body = CASE WHEN sensitive THEN NULL ELSE html_body END
         WHERE id = $1 AND status = 'sending'",
    )
    .bind(id)
    .bind(provider)
    .bind(error)
    .execute(db)
    .await
    .map(|_| ())
    .during("record a delivery of unknown outcome")
}

/// What `settle_abandoned` changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Claimed longer ago than the delivery lease: the run died during the
    /// provider call, so whether it went out is unknown. Never resent.
    pub unknown: u64,
    /// Codes still pending after their validity (their job died or is dead):
    /// useless now, failed and blanked.
    pub expired: u64,
}

/// Closes messages no job will finish: `sending` since before `claimed_before`
/// ago becomes `unknown`, a code message still `pending` after the code's
/// validity becomes `failed`. Bodies with codes are blanked on both paths.
pub async fn settle_abandoned<'e>(
    db: impl PgExecutor<'e>,
    claimed_before: std::time::Duration,
) -> Result<Settled, DbError> {
    let (unknown, expired): (i64, i64) = sqlx::query_as(
        "WITH unknown AS (
             UPDATE notifications
             SET status = 'unknown',
                 last_error = 'the delivery attempt stopped during the provider call; it may or may not have been sent',
                 body = CASE WHEN sensitive THEN '' ELSE body END,
                 html_body = CASE WHEN sensitive THEN NULL ELSE html_body END
             WHERE status = 'sending' AND claimed_at < now() - make_interval(secs => $1)
             RETURNING 1),
         expired AS (
             UPDATE notifications
             SET status = 'failed', last_error = 'the code expired before it could be delivered', body = '', html_body = NULL
             WHERE status = 'pending' AND sensitive AND created_at < now() - make_interval(secs => $2)
             RETURNING 1)
         SELECT (SELECT count(*) FROM unknown), (SELECT count(*) FROM expired)",
    )
    .bind(claimed_before.as_secs_f64())
    .bind(crate::messaging::otp::VALIDITY.as_secs_f64())
    .fetch_one(db)
    .await
    .during("settle abandoned notifications")?;
    Ok(Settled { unknown: unknown as u64, expired: expired as u64 })
}

/// Notifications that finished (sent, failed, or `unknown` after a run died
/// mid-call) longer than the retention ago; pending ones are never touched,
/// whatever their age. `$1`: the sweep's time (unix seconds), `$2`:
/// `NOTIFICATION_RETENTION_SECS`. Served by `notifications_created_idx`.
pub const FINISHED_NOTIFICATIONS: &str = "DELETE FROM notifications
     WHERE created_at < to_timestamp($1) - make_interval(secs => $2)
       AND status IN ('sent', 'failed', 'unknown')";

/// Deletes the notifications [`FINISHED_NOTIFICATIONS`] describes, as of `at`.
pub async fn purge_finished(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    retention: std::time::Duration,
) -> Result<u64, DbError> {
    sqlx::query(FINISHED_NOTIFICATIONS)
        .bind(at.timestamp() as f64)
        .bind(retention.as_secs_f64())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .during("delete finished notifications")
}
