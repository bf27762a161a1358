//! Find a locker by place: the search of `GET /api/v1/locker-points` (the
//! in-process directory), with what is free per size and whether each point
//! is online.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use lockers_core::config::DoorDriver;
use lockers_core::places::directory::{Narrowing, PointHit};
use lockers_core::places::is_online;
use lockers_core::rate_limit::{Decision, Limit};
use minijinja::{Value, context};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

use super::shown::{SIZES, parse_size, size_code};
use crate::ApiContext;
use crate::extract::ClientIp;
use crate::pagination::search_terms;
use crate::web::{Page, WebError};

/// Results on one page: the best matches; more words narrow the search.
const SHOWN: usize = 20;

/// Every field as text: a bad value is ignored or refused on the page, never a rejection.
#[derive(Deserialize, Default)]
pub struct SearchQuery {
    q: Option<String>,
    size: Option<String>,
    city_id: Option<String>,
}

/// A point as the search and deposit pages show it.
pub struct ShownPoint {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub online: bool,
    /// Free lockers per size, smallest first.
    pub available: [u32; 4],
}

impl ShownPoint {
    fn new(ctx: &ApiContext, hit: &PointHit<'_>) -> Self {
        let p = hit.point;
        let simulated = ctx.config.door_driver == DoorDriver::Simulated;
        Self {
            id: p.id,
            name: p.name.to_string(),
            address: p.address.to_string(),
            city: p.city_name.to_string(),
            state: p.state_name.to_string(),
            online: is_online(p.last_heartbeat_at, Utc::now(), simulated),
            available: hit.available,
        }
    }

    pub fn value(&self) -> Value {
        let available: Vec<Value> = SIZES
            .iter()
            .zip(self.available)
            .map(|(size, count)| context! { size => size_code(*size), count })
            .collect();
        context! {
            id => self.id.to_string(), name => &self.name, address => &self.address, city => &self.city,
            state => &self.state, online => self.online, available,
        }
    }
}

/// One point from the directory, or none when it does not exist.
pub async fn point(ctx: &ApiContext, id: Uuid) -> Result<Option<ShownPoint>, WebError> {
    let snapshot = ctx.directory.snapshot().await?;
    let narrowing = Narrowing { terms: None, city_id: None, point_id: Some(id) };
    let (hits, _) = snapshot.points(&narrowing, None, 0, 1);
    Ok(hits.first().map(|hit| ShownPoint::new(ctx, hit)))
}

/// Search counts against the same per-address budget as the JSON API's
/// public reads (`PUBLIC_READ_LIMIT_PER_MIN`), so the page is no way around it.
async fn within_read_limit(ctx: &ApiContext, ip: &ClientIp) -> bool {
    let limit = Limit::per(ctx.config.public_read_limit_per_min, Duration::from_secs(60));
    !matches!(ctx.limiter.hit(&format!("read_ip:{}", ip.key()), limit).await, Decision::Limited { .. })
}

pub async fn search(
    State(ctx): State<ApiContext>,
    page: Page,
    ip: ClientIp,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let size = parse_size(q.size.as_deref());
    let city_id = q.city_id.as_deref().and_then(|c| Uuid::parse_str(c.trim()).ok());
    let shown = |status, points: Vec<Value>, total: usize, error: Option<&str>| {
        let sizes: Vec<&str> = SIZES.iter().map(|s| size_code(*s)).collect();
        let context = context! {
            q => q.q.as_deref().unwrap_or_default(), size => size.map(size_code), sizes,
            city_id => city_id.map(|c| c.to_string()), points, total, error,
        };
        page.render_status(status, "app/search.html", context)
    };
    if !within_read_limit(&ctx, &ip).await {
        return Ok(shown(StatusCode::TOO_MANY_REQUESTS, Vec::new(), 0, Some("app.err_rate_limited")));
    }
    let Ok(terms) = search_terms(q.q.as_deref()) else {
        return Ok(shown(StatusCode::BAD_REQUEST, Vec::new(), 0, Some("app.err_invalid_query")));
    };
    let snapshot = ctx.directory.snapshot().await?;
    let narrowing = Narrowing { terms, city_id, point_id: None };
    let (hits, total) = snapshot.points(&narrowing, size, 0, SHOWN);
    let points = hits.iter().map(|hit| ShownPoint::new(&ctx, hit).value()).collect();
    Ok(shown(StatusCode::OK, points, total, None))
}
