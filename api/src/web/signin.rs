//! Signing in to the console (the sender's pages and the admin console) and
//! out of it. Password sign-in goes through the same use case, limits and
//! lockout as `POST /api/v1/auth/login`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::csrf::CsrfForm;
use super::{Page, WebError, session};
use crate::ApiContext;
use crate::error::ApiError;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/app/signin", get(form).post(sign_in)).route("/app/signout", post(sign_out))
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only a path of this site: never `//elsewhere`, `https://...`, or a path
/// with a control character or space (browsers drop tabs and newlines from
/// a URL, so `/<TAB>/elsewhere` would become `//elsewhere`).
pub fn is_local(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.bytes().any(|b| b <= b' ' || b == 0x7f)
}

fn local(next: Option<&str>) -> &str {
    match next {
        Some(path) if is_local(path) => path,
        _ => "/app",
    }
}

/// The sign-in form; signed in, a redirect to `next`, or without one the
/// account's name and a sign-out button.
async fn form(page: Page, next: axum::extract::Query<Next>) -> Response {
    match (&page.signed_in, &next.next) {
        (Some(_), Some(next)) => page.redirect(local(Some(next))),
        (Some(_), None) => page.render("signin.html", minijinja::context! { signed_in => true }),
        (None, next) => {
            let next = local(next.as_deref());
            page.render("signin.html", minijinja::context! { next, next_q => super::error::encode(next) })
        }
    }
}

#[derive(Deserialize)]
struct SignInForm {
    identifier: String,
    password: String,
    next: Option<String>,
}

async fn sign_in(
    State(ctx): State<ApiContext>,
    page: Page,
    CsrfForm(form): CsrfForm<SignInForm>,
) -> Result<Response, WebError> {
    let next = local(form.next.as_deref()).to_owned();
    let attempt = async {
        ctx.accounts.limit_ip(&page.actor).await?;
        Ok::<_, ApiError>(ctx.accounts.login(&ctx.db, &page.actor, &form.identifier, form.password).await?)
    };
    match attempt.await {
        Ok(pair) => {
            // A sign-in over a live session ends that one: nobody holds its token any more.
            session::end(&ctx, &page).await?;
            let cookie = session::start(&page, &pair, ctx.config.refresh_token_ttl);
            Ok(page.with_cookie(cookie).redirect(&next))
        }
        Err(error) => {
            let error = WebError::from(error);
            if error.status() == StatusCode::SERVICE_UNAVAILABLE || error.status().is_server_error() {
                return Err(error);
            }
            let next_q = super::error::encode(&next);
            let context =
                minijinja::context! { next => next, next_q, identifier => form.identifier, error => error.code() };
            Ok(page.render_status(error.status(), "signin.html", context))
        }
    }
}

async fn sign_out(
    State(ctx): State<ApiContext>,
    page: Page,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let forget = session::end(&ctx, &page).await?;
    Ok(page.with_cookie(forget).redirect("/app/signin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_local_path() {
        assert_eq!(local(Some("/admin/jobs?queue=door")), "/admin/jobs?queue=door");
        for outside in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "admin",
            "",
            "/\t/evil.example",
            "/\n",
            "/ /x",
        ] {
            assert_eq!(local(Some(outside)), "/app", "{outside}");
        }
        assert_eq!(local(None), "/app");
    }
}
