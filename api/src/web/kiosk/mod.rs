//! The kiosk surface (see [`crate::web`]).

use axum::Router;

use crate::ApiContext;
use crate::web::assets::Asset;

pub fn router() -> Router<ApiContext> {
    Router::new()
}

/// This surface's templates, compiled into the binary.
pub const TEMPLATES: &[(&str, &str)] = &[];

/// This surface's files under `/assets/`.
pub const ASSETS: &[Asset] = &[];
