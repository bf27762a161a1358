//! CSRF protection for every console form: a random seed in an HttpOnly,
//! SameSite=Strict cookie, and in each form a token that is an HMAC of that
//! seed and the session (under a key derived from `JWT_SECRET`). A request
//! from another site carries neither the cookie (SameSite) nor a token it
//! could compute; a token stops working when its session ends.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use lockers_core::config::Config;
use rand::RngCore;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::WebError;
use super::i18n;
use super::page::{Page, cookie_value};
use crate::ApiContext;

fn name(production: bool) -> &'static str {
    if production { "__Host-lockers_csrf" } else { "lockers_csrf" }
}

/// The request's seed, or a new one (true) that the page must set.
pub fn seed(headers: &HeaderMap, production: bool) -> (String, bool) {
    match i18n::cookie(headers, name(production)).filter(|s| s.len() == 43) {
        Some(seed) => (seed, false),
        None => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            (URL_SAFE_NO_PAD.encode(bytes), true)
        }
    }
}

pub fn cookie(seed: &str, production: bool) -> HeaderValue {
    let secure = if production { "; Secure" } else { "" };
    cookie_value(&format!("{}={seed}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{secure}", name(production)))
}

/// The forms' token for `seed` within `session`.
pub fn token(config: &Config, seed: &str, session: Option<Uuid>) -> String {
    let key = config.jwt_secret.as_ref().map(|s| s.expose()).unwrap_or_default();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(format!("lockers console csrf\0{key}").as_bytes())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(seed.as_bytes());
    mac.update(session.map(|s| s.to_string()).unwrap_or_default().as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// HMAC takes keys of any length; this is never reached.
fn unreachable_hmac() -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(b"lockers").unwrap_or_else(|_| unreachable_hmac())
}

/// A form body (`application/x-www-form-urlencoded`) whose `csrf` field is
/// this page's token; `T` is the rest of the form (it must not name `csrf`;
/// unknown fields are ignored). A missing or wrong token answers 403
/// `csrf_failed`; a malformed form 400 `invalid_form`.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<ApiContext> for CsrfForm<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let page = Page::from_request_parts(&mut parts, ctx).await?;
        let form_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(WebError::page(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
        }
        let bytes = axum::body::to_bytes(body, ctx.config.body_limit_bytes)
            .await
            .map_err(|_| WebError::page(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).map_err(|_| WebError::bad_form())?;
        let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_bytes()).unwrap_or_default();
        if !bool::from(sent.ct_eq(page.csrf.as_bytes())) {
            return Err(WebError::page(StatusCode::FORBIDDEN, "csrf_failed"));
        }
        serde_urlencoded::from_bytes(&bytes).map(Self).map_err(|_| WebError::bad_form())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        use clap::Parser;
        let mut config = Config::try_parse_from(["lockers-api"]).unwrap();
        config.jwt_secret = Some(lockers_core::config::Secret::random());
        config
    }

    #[test]
    fn tokens_depend_on_the_seed_the_session_and_the_secret() {
        let cfg = config();
        let (seed, fresh) = seed(&HeaderMap::new(), false);
        assert!(fresh && seed.len() == 43);
        let session = Uuid::now_v7();
        let a = token(&cfg, &seed, Some(session));
        assert_eq!(a, token(&cfg, &seed, Some(session)));
        assert_ne!(a, token(&cfg, &seed, None));
        assert_ne!(a, token(&cfg, &seed, Some(Uuid::now_v7())));
        assert_ne!(a, token(&cfg, "another seed", Some(session)));
        assert_ne!(a, token(&config(), &seed, Some(session)));
    }
}
