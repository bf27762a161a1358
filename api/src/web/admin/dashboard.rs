//! `/admin`: the dashboard. Each figure is one query (see
//! `places::overview`, `exchange::overview`, `jobs::admin::stats`), whatever
//! the size of the network; the points table is paged.

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{Duration, Utc};
use lockers_core::config::DoorDriver;
use lockers_core::exchange::overview as exchange;
use lockers_core::jobs::admin as jobs;
use lockers_core::places::overview as places;
use minijinja::context;

use super::listing::{self, Params};
use crate::ApiContext;
use crate::web::WebError;
use crate::web::session::ConsoleAdmin;

pub async fn show(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    let (page, notice) = match listing::page(&params) {
        Ok(page) => (page, Default::default()),
        Err(notice) => (listing::first_page(), notice),
    };
    let (now, simulated) = (Utc::now(), ctx.config.door_driver == DoorDriver::Simulated);
    let mut conn = ctx.db.acquire().await?;
    let online = places::points_online(&mut conn, now, simulated).await?;
    let waiting = exchange::items_waiting(&mut conn).await?;
    let failed_doors = exchange::failed_door_commands_since(&mut conn, now - Duration::hours(24)).await?;
    let queues = jobs::stats(&mut *conn).await?;
    let (points, total) = places::lockers_by_point(&mut conn, None, page.limit(), page.offset()).await?;
    let dead: i64 = queues.iter().map(|q| q.dead).sum();
    let queues: Vec<_> = queues
        .iter()
        .map(|q| {
            context! {
                queue => &q.queue, ready => q.ready, scheduled => q.scheduled, running => q.running,
                retrying => q.retrying, dead => q.dead,
                oldest_secs => q.oldest_ready_secs.map(|s| s.max(0.0).round() as i64),
            }
        })
        .collect();
    let points: Vec<_> = points
        .iter()
        .map(|p| {
            context! {
                id => p.point_id.to_string(), name => &p.point_name, city => &p.city_name, state => &p.state_name,
                online => p.is_online(now, simulated), available => p.available, reserved => p.reserved,
                occupied => p.occupied, maintenance => p.maintenance, total => p.total(),
            }
        })
        .collect();
    let pager = listing::pager("/admin", &params, &[], page, total);
    let context = context! {
        section => "dashboard",
        notice => notice.value(),
        online => online.online, offline => online.offline,
        stored => waiting.stored, expired => waiting.expired,
        failed_doors => failed_doors, dead => dead,
        queues => queues, points => points, pager => pager,
    };
    Ok(admin.page.render_status(notice.status(), "admin/dashboard.html", context))
}
