//! The admin console (`/admin`, see [`crate::web`]): the dashboard, places and
//! lockers, items and transactions, users, the audit log and dead jobs. Its
//! pages call the same core use cases as the JSON API's admin routes, and map
//! their refusals through the same `ApiError` (same status, same code). Every
//! route takes [`ConsoleAdmin`](crate::web::session::ConsoleAdmin) (signed
//! out: to sign in; not an admin: 403) and every form its CSRF token.
//!
//! A write that goes through redirects (303) to its page with `?done=`; a
//! refused one draws the page again with the refusal's status and message.

mod audit;
mod dashboard;
mod jobs;
mod listing;
mod notice;
mod places;
mod points;
mod records;
mod users;

use axum::Router;
use axum::routing::{get, post};

use crate::ApiContext;
use crate::web::assets::{Asset, CSS};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/admin", get(dashboard::show))
        .route("/admin/places", get(places::show))
        .route("/admin/states", post(places::create_state))
        .route("/admin/states/{id}", post(places::rename_state))
        .route("/admin/states/{id}/delete", post(places::delete_state))
        .route("/admin/cities", post(places::create_city))
        .route("/admin/cities/{id}", post(places::update_city))
        .route("/admin/cities/{id}/delete", post(places::delete_city))
        .route("/admin/points", get(points::list).post(points::create))
        .route("/admin/points/{id}", get(points::show).post(points::update))
        .route("/admin/points/{id}/delete", post(points::delete))
        .route("/admin/points/{id}/lockers", post(points::create_locker))
        .route("/admin/points/{id}/kiosk-enrolment", post(points::enrol_screen))
        .route("/admin/lockers/{id}", post(points::update_locker))
        .route("/admin/lockers/{id}/delete", post(points::delete_locker))
        .route("/admin/lockers/{id}/status", post(points::set_status))
        .route("/admin/lockers/{id}/force-clear", post(points::force_clear))
        .route("/admin/items", get(records::items))
        .route("/admin/transactions", get(records::transactions))
        .route("/admin/users", get(users::list))
        .route("/admin/users/{id}", post(users::update))
        .route("/admin/audit", get(audit::list))
        .route("/admin/jobs", get(jobs::list))
        .route("/admin/jobs/{id}/retry", post(jobs::retry))
}

/// This surface's templates, compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("admin/layout.html", include_str!("../../../templates/admin/layout.html")),
    ("admin/pager.html", include_str!("../../../templates/admin/pager.html")),
    ("admin/queues.html", include_str!("../../../templates/admin/queues.html")),
    ("admin/point_table.html", include_str!("../../../templates/admin/point_table.html")),
    ("admin/point_filter.html", include_str!("../../../templates/admin/point_filter.html")),
    ("admin/dashboard.html", include_str!("../../../templates/admin/dashboard.html")),
    ("admin/places.html", include_str!("../../../templates/admin/places.html")),
    ("admin/points.html", include_str!("../../../templates/admin/points.html")),
    ("admin/point.html", include_str!("../../../templates/admin/point.html")),
    ("admin/items.html", include_str!("../../../templates/admin/items.html")),
    ("admin/transactions.html", include_str!("../../../templates/admin/transactions.html")),
    ("admin/users.html", include_str!("../../../templates/admin/users.html")),
    ("admin/audit.html", include_str!("../../../templates/admin/audit.html")),
    ("admin/jobs.html", include_str!("../../../templates/admin/jobs.html")),
];

/// This surface's files under `/assets/`.
pub const ASSETS: &[Asset] =
    &[Asset { path: "web/admin.css", content_type: CSS, body: include_bytes!("../../../assets/web/admin.css") }];
