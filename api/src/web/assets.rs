//! Stylesheets, scripts and images of the console, embedded in the binary and
//! served under `/assets/`: the pages work with no internet at all.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ApiContext;

/// One embedded file, served at `/assets/{path}`.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

pub const CSS: &str = "text/css; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";

/// The shared look of every surface.
const SHARED: &[Asset] = &[
    Asset { path: "web/console.css", content_type: CSS, body: include_bytes!("../../assets/web/console.css") },
    Asset { path: "web/console.js", content_type: JS, body: include_bytes!("../../assets/web/console.js") },
];

pub fn router() -> Router<ApiContext> {
    Router::new().route("/assets/{*path}", get(serve))
}

fn all() -> impl Iterator<Item = &'static Asset> {
    [SHARED, super::kiosk::ASSETS, super::app::ASSETS, super::admin::ASSETS].into_iter().flatten()
}

async fn serve(Path(path): Path<String>) -> Response {
    match all().find(|a| a.path == path) {
        Some(asset) => {
            ([(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "public, max-age=3600")], asset.body)
                .into_response()
        }
        None => crate::middleware::not_found().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_are_unique() {
        let mut paths: Vec<&str> = all().map(|a| a.path).collect();
        let count = paths.len();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), count, "two assets share a path");
    }
}
