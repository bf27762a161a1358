//! The sender's pages (`/app`): sign up and verify, sign in by code, find a
//! locker by place, deposit, follow items (drop-off, cancel, charges) and
//! receipts. Every page calls the same core use cases as the JSON API; only
//! the answer differs (HTML, and refusals shown on the form they came from).

mod account;
mod deposit;
mod items;
mod profile;
mod receipts;
mod refusal;
mod search;
mod shown;

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};

use crate::ApiContext;
use crate::web::Page;
use crate::web::assets::{Asset, CSS};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/app", get(home))
        .route("/app/signup", get(account::signup_page).post(account::signup))
        .route("/app/verify", get(account::verify_page).post(account::verify))
        .route("/app/verify/resend", post(account::resend))
        .route("/app/signin/code", get(account::code_page).post(account::request_code))
        .route("/app/signin/code/enter", post(account::enter_code))
        .route("/app/points", get(search::search))
        .route("/app/points/{id}/deposit", get(deposit::form).post(deposit::deposit))
        .route("/app/items", get(items::list))
        .route("/app/items/{id}", get(items::show))
        .route("/app/items/{id}/dropoff", post(items::drop_off))
        .route("/app/items/{id}/cancel", post(items::cancel))
        .route("/app/receipts", get(receipts::list))
        .route("/app/account", get(profile::show))
        .route("/app/account/phone", post(profile::prove_phone))
        .route("/app/account/phone/resend", post(profile::resend_phone_code))
}

/// This surface's templates, compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("app/layout.html", include_str!("../../../templates/app/layout.html")),
    ("app/error.html", include_str!("../../../templates/app/error.html")),
    ("app/signup.html", include_str!("../../../templates/app/signup.html")),
    ("app/verify.html", include_str!("../../../templates/app/verify.html")),
    ("app/code_request.html", include_str!("../../../templates/app/code_request.html")),
    ("app/code_enter.html", include_str!("../../../templates/app/code_enter.html")),
    ("app/search.html", include_str!("../../../templates/app/search.html")),
    ("app/deposit.html", include_str!("../../../templates/app/deposit.html")),
    ("app/items.html", include_str!("../../../templates/app/items.html")),
    ("app/item.html", include_str!("../../../templates/app/item.html")),
    ("app/receipts.html", include_str!("../../../templates/app/receipts.html")),
    ("app/account.html", include_str!("../../../templates/app/account.html")),
];

/// This surface's files under `/assets/`.
pub const ASSETS: &[Asset] =
    &[Asset { path: "web/app.css", content_type: CSS, body: include_bytes!("../../../assets/web/app.css") }];

/// The start: signed in, the items; else the sign-in page.
async fn home(page: Page) -> Response {
    page.redirect(if page.signed_in.is_some() { "/app/items" } else { "/app/signin" })
}

#[cfg(test)]
mod tests {
    use lockers_core::exchange::items::ItemStatus;

    use super::shown::{SIZES, size_code};
    use crate::web::i18n::has;

    /// The keys pages build at render time, which the template check cannot see.
    #[test]
    fn every_key_built_at_render_time_has_an_english_text() {
        for status in ItemStatus::ALL {
            for prefix in ["app.status_", "app.status_help_"] {
                assert!(has(&format!("{prefix}{}", status.as_str())), "{prefix}{}", status.as_str());
            }
        }
        for size in SIZES {
            assert!(has(&format!("app.size_{}", size_code(size))), "{size:?}");
        }
        let sources = [
            include_str!("refusal.rs"),
            include_str!("account.rs"),
            include_str!("deposit.rs"),
            include_str!("profile.rs"),
        ];
        for source in sources {
            for (at, _) in source.match_indices("\"app.err_") {
                let key = source[at + 1..].split('"').next().unwrap_or_default();
                assert!(has(key), "no English text for {key}");
            }
        }
        assert!(has("app.err_invalid_query"));
    }
}
