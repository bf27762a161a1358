//! The kiosk: the screen at a locker point (`/kiosk/{point_id}`). A receiver
//! types a phone or email, then the code it got, and sees which door opened
//! ([`collect`]); a sender types a drop-off code ([`dropoff`]).
//! Server-rendered forms, each with its CSRF token; an on-screen keypad and
//! an idle reset in `kiosk.js` (the forms work without it); every text from
//! `i18n/{en,hi,ta}/kiosk.json`.
//!
//! The screen's credential is its point's kiosk token, kept in a cookie set
//! when an admin's enrolment link is opened on it ([`enrol`], [`screen`]); a
//! screen without it sees only "not set up" ([`home`]). The pages call the
//! same core use cases as the point-level JSON routes.

mod collect;
mod dropoff;
mod enrol;
mod frame;
mod home;
mod screen;

use axum::Router;
use axum::response::Response;
use axum::routing::get;

use self::frame::{Frame, KioskQuery};
use self::screen::Screen;
use crate::ApiContext;
use crate::web::Page;
use crate::web::assets::{Asset, CSS, JS};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/kiosk/{id}", get(home::home))
        .route("/kiosk/{id}/enrol", get(enrol::page).post(enrol::redeem))
        .route("/kiosk/{id}/collect", get(collect::contact_page).post(collect::request_code))
        .route("/kiosk/{id}/collect/code", get(collect::code_page).post(collect::collect))
        .route("/kiosk/{id}/dropoff", get(dropoff::page).post(dropoff::drop_off))
}

/// This surface's templates, compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("kiosk/layout.html", include_str!("../../../templates/kiosk/layout.html")),
    ("kiosk/message.html", include_str!("../../../templates/kiosk/message.html")),
    ("kiosk/keypad.html", include_str!("../../../templates/kiosk/keypad.html")),
    ("kiosk/home.html", include_str!("../../../templates/kiosk/home.html")),
    ("kiosk/not_set_up.html", include_str!("../../../templates/kiosk/not_set_up.html")),
    ("kiosk/enrol.html", include_str!("../../../templates/kiosk/enrol.html")),
    ("kiosk/collect.html", include_str!("../../../templates/kiosk/collect.html")),
    ("kiosk/code.html", include_str!("../../../templates/kiosk/code.html")),
    ("kiosk/dropoff.html", include_str!("../../../templates/kiosk/dropoff.html")),
    ("kiosk/door.html", include_str!("../../../templates/kiosk/door.html")),
];

/// This surface's files under `/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset { path: "web/kiosk.css", content_type: CSS, body: include_bytes!("../../../assets/web/kiosk.css") },
    Asset { path: "web/kiosk.js", content_type: JS, body: include_bytes!("../../../assets/web/kiosk.js") },
];

/// "Door N is open", the number huge, and what to do (`instruction`: a key of kiosk.json).
fn door_open(page: &Page, screen: &Screen, door: i32, instruction: &str) -> Response {
    let frame = Frame::of(screen, &KioskQuery::default(), "");
    page.render(
        "kiosk/door.html",
        frame.context(None, minijinja::context! { door => door, instruction => instruction }),
    )
}
