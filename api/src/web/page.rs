//! What every page knows of its request: language, CSRF token, path, the
//! signed-in user if any, and the cookies it must set; and how it answers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use lockers_core::accounts::users::{Role, User};
use lockers_core::audit::Actor;
use minijinja::Value;
use uuid::Uuid;

use super::i18n::Lang;
use super::{WebError, csrf, session};
use crate::ApiContext;
use crate::extract::Caller;

/// A signed-in user of the console and their session (refresh-token family).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub session_id: Uuid,
}

/// The request as a page sees it. Extracted once per request (later
/// extractions reuse it).
#[derive(Debug, Clone)]
pub struct Page {
    pub lang: Lang,
    /// The request path (and query), e.g. for `next=` after signing in.
    pub path: String,
    /// The token every form of this page carries.
    pub csrf: String,
    pub signed_in: Option<SignedIn>,
    /// Who acts, for the audit log: the user (or admin) when signed in.
    pub actor: Actor,
    production: bool,
    set_cookies: Vec<HeaderValue>,
}

impl FromRequestParts<ApiContext> for Page {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        if let Some(page) = parts.extensions.get::<Page>() {
            return Ok(page.clone());
        }
        let production = ctx.config.is_production();
        let (lang, chosen) = Lang::of_request(parts.uri.query(), &parts.headers);
        let mut set_cookies = Vec::new();
        if chosen {
            set_cookies.push(cookie_value(&format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code())));
        }
        let signed_in = session::current(&parts.headers, ctx).await?;
        let (seed, fresh) = csrf::seed(&parts.headers, production);
        if fresh {
            set_cookies.push(csrf::cookie(&seed, production));
        }
        let csrf = csrf::token(&ctx.config, &seed, signed_in.as_ref().map(|s| s.session_id));
        let Caller(anonymous) = Caller::from_request_parts(parts, ctx).await?;
        let actor = match &signed_in {
            Some(SignedIn { user, .. }) => crate::extract::acting(anonymous, user),
            None => anonymous,
        };
        let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let page = Page { lang, path, csrf, signed_in, actor, production, set_cookies };
        parts.extensions.insert(page.clone());
        Ok(page)
    }
}

/// A `Set-Cookie` value built from our own constants and tokens.
pub fn cookie_value(raw: &str) -> HeaderValue {
    HeaderValue::from_str(raw).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

impl Page {
    pub fn user(&self) -> Option<&User> {
        self.signed_in.as_ref().map(|s| &s.user)
    }

    pub fn is_production(&self) -> bool {
        self.production
    }

    /// Adds a `Set-Cookie` to this page's answer.
    pub fn with_cookie(mut self, value: HeaderValue) -> Self {
        self.set_cookies.push(value);
        self
    }

    /// The variables every template sees.
    fn base_context(&self) -> Value {
        let user = self.user().map(|u| {
            minijinja::context! { id => u.id.to_string(), name => &u.name, email => &u.email, role => if u.role == Role::Admin { "admin" } else { "user" } }
        });
        minijinja::context! {
            lang => self.lang.code(),
            csrf => &self.csrf,
            path => &self.path,
            user => user,
        }
    }

    /// Renders `template` with `context` (and the base variables): 200.
    pub fn render(&self, template: &str, context: Value) -> Response {
        self.render_status(StatusCode::OK, template, context)
    }

    pub fn render_status(&self, status: StatusCode, template: &str, context: Value) -> Response {
        let context = minijinja::context! { ..context, ..self.base_context() };
        match super::render::render(template, context) {
            Ok(html) => self.finish((status, Html(html)).into_response()),
            Err(error) => {
                tracing::error!(%error, template, "a page does not render");
                self.finish(WebError::page(StatusCode::INTERNAL_SERVER_ERROR, "internal").into_response())
            }
        }
    }

    /// A 303 to `to` (after a form), with this page's cookies.
    pub fn redirect(&self, to: &str) -> Response {
        self.finish(axum::response::Redirect::to(to).into_response())
    }

    /// An error page with this page's cookies.
    pub fn error(&self, error: WebError) -> Response {
        self.finish(error.into_response())
    }

    fn finish(&self, mut response: Response) -> Response {
        let headers = response.headers_mut();
        for cookie in &self.set_cookies {
            headers.append(header::SET_COOKIE, cookie.clone());
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
