//! Telling staff that a locker needs hands: an email to every active admin
//! with a proven email, an audit entry, and an error-level log line with a
//! stable event name, all in the caller's transaction.

use minijinja::context;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::ExchangeError;
use crate::accounts::contact::Email;
use crate::audit::{self, Actor, Entry};
use crate::db::During;
use crate::messaging::outbox::{self, Message, Recipient};

/// One alert: `event` names it for logs and the audit log (`alert.<event>`).
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    pub event: &'static str,
    pub locker_id: Uuid,
    pub item_id: Option<Uuid>,
    /// One sentence for people: what happened and what to do.
    pub summary: &'a str,
}

/// Raises `alert`: mail to admins, audit, log.
pub async fn raise(conn: &mut PgConnection, by: &Actor, alert: Alert<'_>) -> Result<(), ExchangeError> {
    tracing::error!(event = alert.event, locker_id = %alert.locker_id, item_id = ?alert.item_id, "{}", alert.summary);
    let admins: Vec<(String,)> = sqlx::query_as(
        "SELECT email FROM users WHERE role = 'admin' AND disabled_at IS NULL AND email_verified_at IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await
    .during("list admins to alert")?;
    for (email,) in admins {
        let Ok(email) = Email::parse(&email) else { continue };
        let message = admin_alert(email, &alert);
        outbox::queue(conn, &message).await?;
    }
    let action = format!("alert.{}", alert.event);
    let entry = Entry {
        action: &action,
        target_type: "locker",
        target_id: Some(alert.locker_id.to_string()),
        before: None,
        after: Some(json!({ "item_id": alert.item_id, "summary": alert.summary })),
    };
    audit::record(conn, by, entry).await?;
    Ok(())
}

/// The alert's email to one admin.
pub(crate) fn admin_alert(to: Email, alert: &Alert<'_>) -> Message {
    let context = context! {
        event => alert.event.replace('_', " "),
        summary => alert.summary,
        locker_id => alert.locker_id.to_string(),
        item_id => alert.item_id.map(|id| id.to_string()),
    };
    Message { to: Recipient::Email(to), kind: "admin_alert", context, sensitive: false }
}

/// Takes `locker_id` out of service (`maintenance`) and raises `alert`.
pub async fn out_of_service(conn: &mut PgConnection, by: &Actor, alert: Alert<'_>) -> Result<(), ExchangeError> {
    sqlx::query("UPDATE lockers SET status = 'maintenance', updated_at = now() WHERE id = $1")
        .bind(alert.locker_id)
        .execute(&mut *conn)
        .await
        .during("take a locker out of service")?;
    raise(conn, by, alert).await
}
