//! The web console: three server-rendered surfaces served by the intake, on
//! the same use cases as the JSON API.
//!
//! - `/kiosk/{point_id}`: the screen at a locker point (its kiosk credential
//!   is a cookie set by enrolment on the device);
//! - `/app`: the sender's pages;
//! - `/admin`: the admin console.
//!
//! Pages are minijinja templates compiled into the binary ([`render`]), with
//! every text from one catalogue per language ([`i18n`]). Signed-in surfaces
//! use a cookie session of the same family as refresh tokens ([`session`]);
//! every form carries a CSRF token ([`csrf`]). Assets come from the binary
//! too ([`assets`]): nothing is loaded from elsewhere.

pub mod assets;
pub mod csrf;
mod error;
pub mod i18n;
pub mod page;
pub mod render;
pub mod session;
pub(crate) mod signin;

mod admin;
mod app;
mod kiosk;

use axum::Router;

use crate::ApiContext;
pub use error::{WebError, error_pages};
pub use page::Page;

/// Every page and asset of the three surfaces.
pub fn router() -> Router<ApiContext> {
    Router::new()
        .merge(signin::router())
        .merge(kiosk::router())
        .merge(app::router())
        .merge(admin::router())
        .merge(assets::router())
}
