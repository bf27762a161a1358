//! `/admin/audit`: the audit log, newest first, filtered by actor, action,
//! target and days (`audit::list`, as `GET /admin/audit` reads it).

use axum::extract::{Query, State};
use axum::response::Response;
use lockers_core::audit::{self, Filter};
use minijinja::context;

use super::listing::{self, Params};
use super::notice::Notice;
use crate::ApiContext;
use crate::web::WebError;
use crate::web::session::ConsoleAdmin;

/// The longest text filter taken, as the JSON API bounds it.
const MAX_FILTER: usize = 200;

const KEPT: [&str; 6] = ["actor_id", "action", "target_type", "target_id", "from", "to"];

fn filter_of(params: &Params) -> Result<Filter, Notice> {
    let text = |name: &str| -> Result<Option<String>, Notice> {
        match listing::field(params, name) {
            Some(t) if t.len() > MAX_FILTER || t.contains(char::is_control) => {
                Err(Notice::refused(axum::http::StatusCode::BAD_REQUEST, "admin.err_bad_filter"))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    let (from, to) = (listing::day(params, "from", 0)?, listing::day(params, "to", 1)?);
    listing::range(from, to)?;
    Ok(Filter {
        actor_id: listing::id(params, "actor_id")?,
        action: text("action")?,
        target_type: text("target_type")?,
        target_id: text("target_id")?,
        from,
        to,
    })
}

pub async fn list(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    let parsed = filter_of(&params).and_then(|f| listing::page(&params).map(|p| (f, p)));
    let ((filter, page), notice) = match parsed {
        Ok(parsed) => (parsed, Notice::None),
        Err(refused) => ((Filter::default(), listing::first_page()), refused),
    };
    let (records, total) = audit::list(&mut *ctx.db.acquire().await?, &filter, page.limit(), page.offset()).await?;
    let entries: Vec<_> = records
        .iter()
        .map(|r| {
            let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
            context! {
                id => r.id, at => listing::when(r.created_at), actor_id => r.actor_id.map(|a| a.to_string()),
                action => &r.action, target_type => &r.target_type, target_id => &r.target_id,
                before => json(&r.before), after => json(&r.after), client_ip => &r.client_ip,
            }
        })
        .collect();
    let get = |k: &str| listing::field(&params, k).unwrap_or_default().to_owned();
    let context = context! {
        section => "audit",
        notice => notice.value(),
        entries => entries,
        filter => context! {
            actor_id => get("actor_id"), action => get("action"), target_type => get("target_type"),
            target_id => get("target_id"), from => get("from"), to => get("to"),
        },
        pager => listing::pager("/admin/audit", &params, &KEPT, page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/audit.html", context))
}
