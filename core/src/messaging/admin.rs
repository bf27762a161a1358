//! The operator's view of the outbox (`lockers-admin notifications ...`):
//! failed messages, and sending one again as a new message, which is audited.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};
use crate::exchange::items::{mask_email, mask_phone};
use crate::jobs::{self, DeliverNotification, EnqueueError};
use crate::messaging::outbox::queue_for;

/// A message the provider refused or that ran out of attempts.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Failed {
    pub id: Uuid,
    pub channel: String,
    /// Masked: `+91******3210`, `a***@example.com`.
    pub recipient: String,
    pub kind: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The message that was sent in its place, once resent.
    pub resent_as: Option<Uuid>,
}

/// The contact as an operator's screen shows it.
fn masked(channel: &str, recipient: &str) -> String {
    if channel == "sms" { mask_phone(recipient) } else { mask_email(recipient) }
}

/// Failed messages, newest first (served by `notifications_failed_idx`).
pub async fn failed<'e>(db: impl PgExecutor<'e>, limit: i64) -> Result<Vec<Failed>, DbError> {
    let mut rows: Vec<Failed> = sqlx::query_as(
        "SELECT n.id, n.channel, n.recipient, n.kind, n.attempts, n.last_error, n.created_at,
                (SELECT r.id FROM notifications r WHERE r.resent_from = n.id) AS resent_as
         FROM notifications n WHERE n.status = 'failed'
         ORDER BY n.created_at DESC, n.id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
    .during("list failed notifications")?;
    for row in &mut rows {
        row.recipient = masked(&row.channel, &row.recipient);
    }
    Ok(rows)
}

/// Each way a resend is refused.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    #[error("no notification with id {0}")]
    NotFound(Uuid),
    #[error("notification {id} is {status}, not failed: only failed messages are resent")]
    NotFailed { id: Uuid, status: String },
    #[error(
        "notification {0} is unknown: it may have been delivered; check the provider's log, \
         then resend it with --unknown if it was not"
    )]
    MaybeDelivered(Uuid),
    #[error(
        "notification {0} carried a one-time code, which was blanked when it was given up: \
         it cannot be resent; the user should ask for a new code"
    )]
    CodeBlanked(Uuid),
    #[error("notification {id} was already resent as {resent_as}")]
    AlreadyResent { id: Uuid, resent_as: Uuid },
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The message sent in place of a failed one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resent {
    pub id: Uuid,
    pub resent_from: Uuid,
    pub channel: String,
    /// Masked, as [`Failed::recipient`].
    pub recipient: String,
}

#[derive(sqlx::FromRow)]
struct Original {
    status: String,
    sensitive: bool,
    channel: String,
    recipient: String,
}

/// Which messages an operator resends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resendable {
    /// Only `failed` ones.
    #[default]
    Failed,
    /// `failed`, and `unknown` ones the operator checked were not delivered
    /// (the provider got the request and the answer never came).
    FailedOrUnknown,
}

/// Sends failed notification `id` again: a new outbox row (`resent_from` = `id`,
/// fresh attempts) and its delivery job, in one transaction audited as
/// `notification.resend` by `by`. The failed row stays as it was. Refused for
/// a message that is not failed (`unknown` only when `which` allows it), for
/// one already resent, and for a code whose body was blanked.
pub async fn resend(conn: &mut PgConnection, by: &Actor, id: Uuid, which: Resendable) -> Result<Resent, ResendError> {
    audit::audited(conn, by, async |tx| {
        // Locked: a second resend of the same message waits here, then sees this one's row.
        let original: Original =
            sqlx::query_as("SELECT status, sensitive, channel, recipient FROM notifications WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .during("read a notification")?
                .ok_or(ResendError::NotFound(id))?;
        match (original.status.as_str(), which) {
            ("failed", _) | ("unknown", Resendable::FailedOrUnknown) => {}
            ("unknown", Resendable::Failed) => return Err(ResendError::MaybeDelivered(id)),
            _ => return Err(ResendError::NotFailed { id, status: original.status }),
        }
        if original.sensitive {
            return Err(ResendError::CodeBlanked(id));
        }
        let earlier: Option<Uuid> = sqlx::query_scalar("SELECT id FROM notifications WHERE resent_from = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .during("look for an earlier resend")?;
        if let Some(resent_as) = earlier {
            return Err(ResendError::AlreadyResent { id, resent_as });
        }
        let new_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO notifications (id, channel, recipient, kind, subject, body, html_body, sensitive, resent_from)
             SELECT $2, channel, recipient, kind, subject, body, html_body, sensitive, id
             FROM notifications WHERE id = $1",
        )
        .bind(id)
        .bind(new_id)
        .execute(&mut *tx)
        .await
        .during("write the resent notification")?;
        jobs::enqueue(tx, queue_for(original.sensitive), &DeliverNotification { notification_id: new_id }).await?;
        let resent = Resent {
            id: new_id,
            resent_from: id,
            recipient: masked(&original.channel, &original.recipient),
            channel: original.channel,
        };
        let entry = Entry::change("notification.resend", "notification", id, None::<&()>, Some(&resent));
        Ok((resent, entry))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_see_contacts_masked() {
        assert_eq!(masked("sms", "+919876543210"), "+91******3210");
        assert_eq!(masked("email", "asha@example.com"), "a***@example.com");
    }
}
