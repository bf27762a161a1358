//! Errors of the console's pages: an HTML page in the reader's language with
//! the status and the same stable code as the JSON API, or a redirect (to
//! sign in). Handlers return `Result<Response, WebError>`; the page is drawn
//! by [`error_pages`], which knows the request's language.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::{self, Lang};
use crate::error::ApiError;

#[derive(Debug)]
pub enum WebError {
    /// An error page: status, stable code, and for 429/503 when to retry.
    Page { status: StatusCode, code: &'static str, retry_after_secs: Option<u64> },
    /// Not signed in: to the sign-in page, then back to `next`.
    SignIn { next: String },
}

impl WebError {
    pub fn page(status: StatusCode, code: &'static str) -> Self {
        Self::Page { status, code, retry_after_secs: None }
    }

    pub fn not_found() -> Self {
        Self::page(StatusCode::NOT_FOUND, "not_found")
    }

    pub fn forbidden() -> Self {
        Self::page(StatusCode::FORBIDDEN, "forbidden")
    }

    pub fn bad_form() -> Self {
        Self::page(StatusCode::BAD_REQUEST, "invalid_form")
    }

    /// The status and code, e.g. to show a message on a form instead.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Page { code, .. } => code,
            Self::SignIn { .. } => "unauthorized",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Page { status, .. } => *status,
            Self::SignIn { .. } => StatusCode::UNAUTHORIZED,
        }
    }
}

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> Self {
        let (status, code, retry_after_secs) = error.classify();
        Self::Page { status, code, retry_after_secs }
    }
}

impl From<sqlx::Error> for WebError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::from(error).into()
    }
}

impl From<lockers_core::db::DbError> for WebError {
    fn from(error: lockers_core::db::DbError) -> Self {
        ApiError::from(error).into()
    }
}

/// What [`error_pages`] draws: carried on the response as an extension.
#[derive(Clone, Copy)]
struct ErrorPage {
    code: &'static str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { next } => {
                let to = format!("/app/signin?next={}", encode(&next));
                Redirect::to(&to).into_response()
            }
            Self::Page { status, code, retry_after_secs } => {
                let mut response = status.into_response();
                if let Some(secs) = retry_after_secs {
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response.extensions_mut().insert(ErrorPage { code });
                response
            }
        }
    }
}

/// Percent-encodes a path for a query value.
pub fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Where "back" leads from an error: the start of the surface it happened on.
fn surface_home(path: &str) -> String {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("kiosk"), Some(point)) if uuid::Uuid::parse_str(point).is_ok() => format!("/kiosk/{point}"),
        (Some("admin"), _) => "/admin".to_owned(),
        _ => "/app".to_owned(),
    }
}

/// Draws the error page of a [`WebError`] in the request's language.
pub async fn error_pages(request: Request, next: Next) -> Response {
    let (lang, _) = Lang::of_request(request.uri().query(), request.headers());
    let home = surface_home(request.uri().path());
    let mut response = next.run(request).await;
    let Some(ErrorPage { code }) = response.extensions_mut().remove::<ErrorPage>() else {
        return response;
    };
    let status = response.status();
    let message = [format!("common.err_{code}"), format!("common.error_{}", status.as_u16())]
        .into_iter()
        .find(|key| i18n::has(key))
        .unwrap_or_else(|| "common.error_other".to_owned());
    let context = minijinja::context! {
        lang => lang.code(), status => status.as_u16(), code => code, message => message, home => home,
    };
    let html = super::render::render("error.html", context).unwrap_or_else(|error| {
        tracing::error!(%error, "the error page does not render");
        format!("<!doctype html><title>{status}</title><p>{status} {code}</p>")
    });
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(html))
}
