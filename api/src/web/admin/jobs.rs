//! `/admin/jobs`: the queues' depth and dead jobs, one queue or all, with
//! their last error; retrying one puts it back in its queue
//! (`jobs::admin::retry_dead`, audited as `job.retry` by the admin).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use lockers_core::jobs::Queue;
use lockers_core::jobs::admin::{self, RetryError};
use minijinja::context;

use super::listing::{self, Params};
use super::notice::Notice;
use super::places::Empty;
use crate::ApiContext;
use crate::web::WebError;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleAdmin;

/// The longest last error shown in the table (the whole one is in the database).
const ERROR_SHOWN: usize = 300;

pub async fn list(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    render(&ctx, &admin, &params, Notice::done(listing::field(&params, "done"))).await
}

async fn render(ctx: &ApiContext, admin: &ConsoleAdmin, params: &Params, notice: Notice) -> Result<Response, WebError> {
    let queue = listing::field(params, "queue").map(|q| q.parse::<Queue>());
    let (page, queue, notice) = match (listing::page(params), queue) {
        (Ok(page), None) => (page, None, notice),
        (Ok(page), Some(Ok(queue))) => (page, Some(queue), notice),
        (Err(refused), _) => (listing::first_page(), None, refused),
        (_, Some(Err(_))) => {
            (listing::first_page(), None, Notice::refused(StatusCode::BAD_REQUEST, "admin.err_bad_filter"))
        }
    };
    let mut conn = ctx.db.acquire().await?;
    let stats = admin::stats(&mut *conn).await?;
    let (dead, total) = admin::dead_page(&mut conn, queue, page.limit(), page.offset()).await?;
    let stats: Vec<_> = stats
        .iter()
        .map(|q| {
            context! {
                queue => &q.queue, ready => q.ready, scheduled => q.scheduled, running => q.running,
                retrying => q.retrying, dead => q.dead,
                oldest_secs => q.oldest_ready_secs.map(|s| s.max(0.0).round() as i64),
            }
        })
        .collect();
    let dead: Vec<_> = dead
        .iter()
        .map(|j| {
            let error: String = j.last_error.as_deref().unwrap_or_default().chars().take(ERROR_SHOWN).collect();
            context! {
                id => j.id, queue => &j.queue, attempts => j.attempts, error => error,
                finished_at => listing::when_opt(j.finished_at),
            }
        })
        .collect();
    let context = context! {
        section => "jobs",
        notice => notice.value(),
        queues => stats,
        dead => dead,
        queue_names => Queue::ALL.iter().map(|q| q.as_str()).collect::<Vec<_>>(),
        queue => queue.map(Queue::as_str),
        pager => listing::pager("/admin/jobs", params, &["queue"], page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/jobs.html", context))
}

pub async fn retry(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, WebError> {
    let Ok(id) = id.parse::<i64>() else { return Err(WebError::not_found()) };
    match admin::retry_dead(&mut *ctx.db.acquire().await?, &admin.actor, id).await {
        Ok(_) => Ok(admin.page.redirect("/admin/jobs?done=job_retried")),
        Err(RetryError::NotDead(_)) => {
            let notice = Notice::refused(StatusCode::CONFLICT, "admin.err_job_not_dead");
            render(&ctx, &admin, &Params::new(), notice).await
        }
        Err(RetryError::Db(e)) => Err(e.into()),
    }
}
