//! Reading the audit log back.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{DbError, During};

/// What to list; `None` does not narrow. Times: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One recorded action.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Record {
    pub id: i64,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

const WHERE: &str = "WHERE ($1::uuid IS NULL OR actor_id = $1) AND ($2::text IS NULL OR action = $2)
    AND ($3::text IS NULL OR target_type = $3) AND ($4::text IS NULL OR target_id = $4)
    AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)";

/// Binds `$1`-`$6` of [`WHERE`] (rows and count are different query types).
macro_rules! bind_filter {
    ($query:expr, $filter:expr) => {
        $query
            .bind($filter.actor_id)
            .bind(&$filter.action)
            .bind(&$filter.target_type)
            .bind(&$filter.target_id)
            .bind($filter.from)
            .bind($filter.to)
    };
}

/// One page of the entries matching `filter`, newest first, and how many match.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Record>, i64), DbError> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, actor_id, action, target_type, target_id, before, after, host(client_ip) AS client_ip,
                request_id, created_at
         FROM audit_log {WHERE} ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
    )));
    let items =
        bind_filter!(rows, filter).bind(limit).bind(offset).fetch_all(&mut *conn).await.during("list the audit log")?;
    let count = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM audit_log {WHERE}")));
    let total = bind_filter!(count, filter).fetch_one(conn).await.during("count the audit log")?;
    Ok((items, total))
}
