//! `GET /admin/audit`, and recording admin actions.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use lockers_core::audit::{self, Actor, Entry};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminUser, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> Router<ApiContext> {
    Router::new().route("/admin/audit", get(list))
}

/// Records an admin's change to `target_type` `id`, with its before and after.
pub async fn record<B: Serialize, A: Serialize>(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target_type: &str,
    id: Uuid,
    before: Option<&B>,
    after: Option<&A>,
) -> Result<()> {
    let entry = Entry {
        action,
        target_type,
        target_id: Some(id.to_string()),
        before: before.map(serde_json::to_value).transpose().map_err(anyhow::Error::from)?,
        after: after.map(serde_json::to_value).transpose().map_err(anyhow::Error::from)?,
    };
    audit::record(conn, actor, entry).await?;
    Ok(())
}

#[derive(Deserialize)]
struct AuditQuery {
    actor_id: Option<Uuid>,
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    page: Option<u32>,
    per_page: Option<u32>,
}

#[derive(Serialize, sqlx::FromRow)]
struct AuditRow {
    id: i64,
    actor_id: Option<Uuid>,
    action: String,
    target_type: String,
    target_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
    client_ip: Option<String>,
    request_id: Option<String>,
    created_at: DateTime<Utc>,
}

/// Newest first, filtered by actor, action, target and time range (`from` inclusive, `to` exclusive).
async fn list(
    State(ctx): State<ApiContext>,
    AdminUser(_): AdminUser,
    query: QueryOf<AuditQuery>,
) -> Result<AppJson<List<AuditRow>>> {
    let Query(q) = query?;
    let page = PageQuery::new(q.page, q.per_page).parse()?;
    let texts = [&q.action, &q.target_type, &q.target_id];
    if texts.iter().any(|t| t.as_ref().is_some_and(|t| t.len() > 200 || t.contains(char::is_control))) {
        return Err(ApiError::bad_request("invalid_query", "filters must be printable text of at most 200 bytes"));
    }
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(ApiError::bad_request("invalid_query", "`from` must not be after `to`"));
    }
    const WHERE: &str = "WHERE ($1::uuid IS NULL OR actor_id = $1) AND ($2::text IS NULL OR action = $2)
        AND ($3::text IS NULL OR target_type = $3) AND ($4::text IS NULL OR target_id = $4)
        AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)";
    let mut conn = ctx.db.acquire().await?;
    let items: Vec<AuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, actor_id, action, target_type, target_id, before, after, host(client_ip) AS client_ip,
                request_id, created_at
         FROM audit_log {WHERE} ORDER BY created_at DESC, id DESC LIMIT $7 OFFSET $8"
    )))
    .bind(q.actor_id)
    .bind(&q.action)
    .bind(&q.target_type)
    .bind(&q.target_id)
    .bind(q.from)
    .bind(q.to)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(&mut *conn)
    .await?;
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM audit_log {WHERE}")))
        .bind(q.actor_id)
        .bind(&q.action)
        .bind(&q.target_type)
        .bind(&q.target_id)
        .bind(q.from)
        .bind(q.to)
        .fetch_one(&mut *conn)
        .await?;
    Ok(AppJson(List::new(items, page, total)))
}
