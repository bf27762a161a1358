//! The audit log: who did what to what, when. Rows are only ever inserted,
//! in the same transaction as the change they describe.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Who acted and from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// `None` for the system or an anonymous caller.
    pub user_id: Option<Uuid>,
    pub client_ip: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

/// One audited action.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

pub async fn record(conn: &mut PgConnection, actor: &Actor, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (actor_id, action, target_type, target_id, before, after, client_ip, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8)",
    )
    .bind(actor.user_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.before)
    .bind(entry.after)
    .bind(actor.client_ip.map(|ip| ip.to_string()))
    .bind(actor.request_id.as_deref())
    .execute(conn)
    .await
    .map(|_| ())
}
