//! `GET /admin/audit`: the audit log, read back through `audit::list`.

use axum::extract::{Query, State};
use chrono::{DateTime, Utc};
use lockers_core::audit::{self, Filter, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::ApiContext;
use crate::error::{ApiError, AppJson, ErrorBody, Result};
use crate::extract::{AdminUser, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries by this actor.
    actor_id: Option<Uuid>,
    /// E.g. `locker.force_clear` (at most 200 bytes).
    action: Option<String>,
    /// E.g. `locker`.
    target_type: Option<String>,
    target_id: Option<String>,
    /// From this time (RFC 3339), inclusive.
    from: Option<DateTime<Utc>>,
    /// Up to this time (RFC 3339).
    to: Option<DateTime<Utc>>,
    #[param(minimum = 1)]
    page: Option<u32>,
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

#[derive(Serialize, ToSchema)]
struct AuditView {
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

impl From<Record> for AuditView {
    fn from(r: Record) -> Self {
        Self {
            id: r.id,
            actor_id: r.actor_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            before: r.before,
            after: r.after,
            client_ip: r.client_ip,
            request_id: r.request_id,
            created_at: r.created_at,
        }
    }
}

/// Newest first, filtered by actor, action, target and time range (`from` inclusive, `to` exclusive).
/// Who did what, when: newest first, filterable.
#[utoipa::path(get, path = "/admin/audit", tag = "audit", params(AuditQuery), security(("bearer" = []), ("oauth2" = [])),
    responses(
    (status = 200, body = List<AuditView>),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
))]
async fn list(
    State(ctx): State<ApiContext>,
    _admin: AdminUser,
    query: QueryOf<AuditQuery>,
) -> Result<AppJson<List<AuditView>>> {
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
    let filter = Filter {
        actor_id: q.actor_id,
        action: q.action,
        target_type: q.target_type,
        target_id: q.target_id,
        from: q.from,
        to: q.to,
    };
    let (items, total) = audit::list(&mut *ctx.db.acquire().await?, &filter, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.into_iter().map(AuditView::from).collect(), page, total)))
}
