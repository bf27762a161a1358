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
    let ids = queue_all(conn, std::slice::from_ref(message)).await?;
    Ok(ids[0])
}

/// [`queue`] for every message of one change: their rows and their delivery
/// jobs (one each, on the queue [`queue_for`] names, written by
/// `jobs::enqueue_unkeyed`) in one statement, so a transition that tells three
/// people costs one round trip, not six.
pub async fn queue_all(conn: &mut PgConnection, messages: &[Message]) -> Result<Vec<Uuid>, EnqueueError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Rows::default();
    for message in messages {
        let rendered = message.render()?;
        rows.ids.push(Uuid::now_v7());
        rows.channels.push(message.to.channel().as_str());
        rows.recipients.push(message.to.address());
        rows.kinds.push(message.kind);
        rows.subjects.push(rendered.subject);
        rows.bodies.push(rendered.text);
        rows.html_bodies.push(rendered.html);
        rows.sensitive.push(message.sensitive);
    }
    let deliveries: Vec<(Queue, DeliverNotification)> = rows
        .ids
        .iter()
        .zip(&rows.sensitive)
        .map(|(&notification_id, &sensitive)| (queue_for(sensitive), DeliverNotification { notification_id }))
        .collect();
    let query = sqlx::query(concat!(
        "WITH written AS (
             INSERT INTO notifications (id, channel, recipient, kind, subject, body, html_body, sensitive)
             SELECT * FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                  $11::text[], $12::bool[])) ",
        jobs::enqueue_unkeyed!()
    ));
    jobs::bind_many(query, &deliveries)?
        .bind(&rows.ids)
        .bind(&rows.channels)
        .bind(&rows.recipients)
        .bind(&rows.kinds)
        .bind(&rows.subjects)
        .bind(&rows.bodies)
        .bind(&rows.html_bodies)
        .bind(&rows.sensitive)
        .execute(&mut *conn)
        .await
        .during("write notifications and enqueue their delivery")?;
    jobs::count_many(&deliveries);
    Ok(rows.ids)
}

/// The columns of [`queue_all`]'s rows, one array each.
#[derive(Default)]
struct Rows<'a> {
    ids: Vec<Uuid>,
    channels: Vec<&'static str>,
    recipients: Vec<&'a str>,
    kinds: Vec<&'static str>,
    subjects: Vec<Option<String>>,
    bodies: Vec<String>,
    html_bodies: Vec<Option<String>>,
    sensitive: Vec<bool>,
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
    let mut claimed = claim_many(db, &[Claim { id, token }]).await?;
    Ok(claimed.pop().and_then(|(_, pending)| pending))
}

/// One run's claim of one message, for [`claim_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub id: Uuid,
    /// Names the run (see [`claim`]).
    pub token: Uuid,
}

/// [`claim`] for many runs in one statement (and so one commit): each claim
/// with what it won, in the order given. Two runs of one message in a batch
/// (different tokens) cannot both win: the row is claimed once, under one token.
pub async fn claim_many<'e>(
    db: impl PgExecutor<'e>,
    claims: &[Claim],
) -> Result<Vec<(Claim, Option<Pending>)>, DbError> {
    let ids: Vec<Uuid> = claims.iter().map(|c| c.id).collect();
    let tokens: Vec<Uuid> = claims.iter().map(|c| c.token).collect();
    let won: Vec<Won> = sqlx::query_as(
        "UPDATE notifications n SET status = 'sending', claimed_at = now(), claim_token = t.token
         FROM unnest($1::uuid[], $2::uuid[]) AS t(id, token)
         WHERE n.id = t.id AND n.id = ANY($1)
           AND (n.status = 'pending' OR (n.status = 'sending' AND n.claim_token = t.token))
         RETURNING n.claim_token, n.id, n.channel, n.recipient, n.kind, n.subject, n.body, n.html_body, n.sensitive",
    )
    .bind(&ids)
    .bind(&tokens)
    .fetch_all(db)
    .await
    .during("claim notifications for delivery")?;
    let mut won: std::collections::HashMap<Uuid, Pending> =
        won.into_iter().map(|w| (w.claim_token, w.pending)).collect();
    Ok(claims.iter().map(|&c| (c, won.remove(&c.token).filter(|p| p.id == c.id))).collect())
}

/// A claimed row and the token it was claimed under.
#[derive(sqlx::FromRow)]
struct Won {
    claim_token: Uuid,
    #[sqlx(flatten)]
    pending: Pending,
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
