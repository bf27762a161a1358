//! The account page: who is signed in, and proving the phone given at signup
//! (its code was texted then; a proven phone can sign in by texted code). A
//! phone's code is asked for and redeemed only signed in to the account
//! holding it, as `POST /auth/verify/request` and `POST /auth/verify` with a
//! session.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use lockers_core::accounts::contact::{Contact, Phone};
use minijinja::context;
use serde::Deserialize;

use super::refusal::{self, RATE_LIMITED, Refusal};
use crate::ApiContext;
use crate::web::WebError;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleUser;

/// What happened just before, shown as a notice.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Notice {
    None,
    Resent,
    Proven,
}

fn account_page(user: &ConsoleUser, notice: Notice, refusal: Option<Refusal>) -> Response {
    let context = context! {
        phone => user.user.phone.as_deref(),
        phone_proven => user.user.phone_verified_at.is_some(),
        resent => notice == Notice::Resent,
        proven => notice == Notice::Proven,
        error => refusal.map(|r| r.key),
    };
    user.page.render_status(refusal.map_or(StatusCode::OK, |r| r.status), "app/account.html", context)
}

pub async fn show(user: ConsoleUser) -> Response {
    account_page(&user, Notice::None, None)
}

/// The account's phone, when it has one that parses.
fn phone_of(user: &ConsoleUser) -> Option<Contact> {
    user.user.phone.as_deref().and_then(|p| Phone::parse(p).ok()).map(Contact::Phone)
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// Proves the phone with the texted code.
pub async fn prove_phone(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    let Some(phone) = phone_of(&user) else { return Ok(account_page(&user, Notice::None, None)) };
    if ctx.accounts.limit_ip(&user.actor).await.is_err() {
        return Ok(account_page(&user, Notice::None, Some(RATE_LIMITED)));
    }
    let code = form.code.replace(' ', "");
    match ctx.accounts.verify(&ctx.db, &user.actor, Some(&user.user), &phone, &code, None).await {
        Ok(proven) => {
            let user = ConsoleUser { user: proven, ..user };
            Ok(account_page(&user, Notice::Proven, None))
        }
        Err(e) => Ok(account_page(&user, Notice::None, Some(refusal::code_flow(e)?))),
    }
}

/// Texts a new code to the account's phone.
pub async fn resend_phone_code(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, WebError> {
    let Some(phone) = phone_of(&user) else { return Ok(account_page(&user, Notice::None, None)) };
    if ctx.accounts.limit_ip(&user.actor).await.is_err() {
        return Ok(account_page(&user, Notice::None, Some(RATE_LIMITED)));
    }
    match ctx.accounts.request_verification(&ctx.db, &user.actor, Some(&user.user), &phone).await {
        Ok(_) => Ok(account_page(&user, Notice::Resent, None)),
        Err(e) => Ok(account_page(&user, Notice::None, Some(refusal::code_flow(e)?))),
    }
}
