//! The audit log: who did what to what, when. Rows are only ever inserted,
//! in the same transaction as the change they describe; [`audited`] is the
//! one way a use case writes and records a change together; [`list`] reads
//! them back.

mod store;

pub use store::{Filter, Record, list};

use serde::Serialize;
use serde_json::Value;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use crate::db::{DbError, During};

/// Who acts: every use case takes one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Party {
    /// A caller not signed in (signup, code requests, failed logins).
    #[default]
    Anonymous,
    User(Uuid),
    Admin(Uuid),
    /// A locker point's controller, by point id.
    Controller(Uuid),
    /// The system itself: scheduled work, workers.
    System,
    /// Whoever runs `lockers-admin` on a server.
    Operator,
}

impl Party {
    /// The account behind the act, if any (the audit log's `actor_id`).
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Self::User(id) | Self::Admin(id) => Some(id),
            _ => None,
        }
    }
}

/// Who acted and from where.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub party: Party,
    pub client_ip: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self { party: Party::System, ..Self::default() }
    }

    pub fn operator() -> Self {
        Self { party: Party::Operator, ..Self::default() }
    }

    /// The same origin, now acting as `party` (e.g. once a login named the user).
    pub fn as_party(&self, party: Party) -> Self {
        Self { party, ..self.clone() }
    }

    pub fn user_id(&self) -> Option<Uuid> {
        self.party.user_id()
    }
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

impl<'a> Entry<'a> {
    /// A change to `target_type` `id`: its state before (none when created) and
    /// after (none when deleted).
    pub fn change<B: Serialize, A: Serialize>(
        action: &'a str,
        target_type: &'a str,
        id: impl ToString,
        before: Option<&B>,
        after: Option<&A>,
    ) -> Self {
        // Serialising plain domain values cannot fail; a failure would show as a null.
        let json = |v: Option<Value>| v.filter(|v| !v.is_null());
        Self {
            action,
            target_type,
            target_id: Some(id.to_string()),
            before: json(before.map(|b| serde_json::to_value(b).unwrap_or(Value::Null))),
            after: json(after.map(|a| serde_json::to_value(a).unwrap_or(Value::Null))),
        }
    }
}

/// The start of an `INSERT ... SELECT` into the audit log, for a use case that
/// writes its change and its entry in one statement (a `WITH` whose last part
/// is this, selecting from the change's `RETURNING`): the columns in the order
/// [`record`] writes them. Bind the actor with [`Actor::audit_binds`]; a
/// literal, for `concat!`.
macro_rules! insert_entry {
    () => {
        "INSERT INTO audit_log (actor_id, action, target_type, target_id, before, after, client_ip, request_id)"
    };
}
pub(crate) use insert_entry;

impl Actor {
    /// The actor's columns of an audit row (`actor_id`, `client_ip` as text
    /// for an `::inet` cast, `request_id`), for statements built on [`insert_entry`].
    pub fn audit_binds(&self) -> (Option<Uuid>, Option<String>, Option<&str>) {
        (self.user_id(), self.client_ip.map(|ip| ip.to_string()), self.request_id.as_deref())
    }
}

pub async fn record(conn: &mut PgConnection, actor: &Actor, entry: Entry<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO audit_log (actor_id, action, target_type, target_id, before, after, client_ip, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8)",
    )
    .bind(actor.user_id())
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
    .during("record an audit entry")
}

/// The audited write every use case shares: runs `write` in a transaction (a
/// savepoint when `conn` is in one already), records the entry it returns in
/// the same transaction, and commits. An error anywhere writes nothing.
pub async fn audited<T, E>(
    conn: &mut PgConnection,
    actor: &Actor,
    write: impl AsyncFnOnce(&mut PgConnection) -> Result<(T, Entry<'static>), E>,
) -> Result<T, E>
where
    E: From<DbError>,
{
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let (value, entry) = write(&mut tx).await?;
    record(&mut tx, actor, entry).await?;
    tx.commit().await.during("commit")?;
    Ok(value)
}
