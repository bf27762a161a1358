//! Accounts on the pages: sign up, prove the email (which signs in), and sign
//! in with a one-time code sent by email or SMS. The rules are
//! `lockers_core::accounts`'; a refusal is shown on the form it came from.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use lockers_core::accounts::codes::Accepted;
use lockers_core::accounts::contact::{Contact, Email, Phone};
use lockers_core::accounts::password::Password;
use lockers_core::accounts::signup::NewAccount;
use lockers_core::accounts::tokens::TokenPair;
use lockers_core::accounts::users::Name;
use minijinja::context;
use serde::Deserialize;

use super::refusal::{self, RATE_LIMITED, Refusal};
use super::shown::query_value;
use crate::ApiContext;
use crate::web::csrf::CsrfForm;
use crate::web::{Page, WebError, session};

type Answer = Result<Response, WebError>;

/// Where a signed-in person lands: a local path from `next`, else their items.
fn landing(next: &str) -> &str {
    let next = next.trim();
    if crate::web::signin::is_local(next) { next } else { "/app/items" }
}

/// Starts the console session of a fresh sign-in (ending a live one: nobody
/// holds its token any more) and goes on to `to`.
async fn signed_in(ctx: &ApiContext, page: Page, pair: &TokenPair, to: &str) -> Answer {
    session::end(ctx, &page).await?;
    let cookie = session::start(&page, pair, ctx.config.refresh_token_ttl);
    Ok(page.with_cookie(cookie).redirect(to))
}

fn status_of(refusal: Option<Refusal>) -> StatusCode {
    refusal.map_or(StatusCode::OK, |r| r.status)
}

// Sign up ------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct SignupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
}

/// The signup form, with what was typed (never the password) and a refusal.
fn signup_form(page: &Page, form: &SignupForm, refusal: Option<Refusal>) -> Response {
    let typed = context! { name => &form.name, email => &form.email, phone => &form.phone };
    let context = context! { form => typed, error => refusal.map(|r| r.key) };
    page.render_status(status_of(refusal), "app/signup.html", context)
}

pub async fn signup_page(page: Page) -> Response {
    signup_form(&page, &SignupForm::default(), None)
}

/// Creates the account (codes go to its email and phone), then asks for the email's code.
pub async fn signup(State(ctx): State<ApiContext>, page: Page, CsrfForm(form): CsrfForm<SignupForm>) -> Answer {
    let refused = |r: Refusal| Ok(signup_form(&page, &form, Some(r)));
    if ctx.accounts.limit_ip(&page.actor).await.is_err() {
        return refused(RATE_LIMITED);
    }
    let Some(name) = Name::parse(&form.name) else { return refused(Refusal::invalid("app.err_invalid_name")) };
    let Ok(email) = Email::parse(&form.email) else { return refused(Refusal::invalid("app.err_invalid_email")) };
    let phone = match form.phone.trim() {
        "" => None,
        raw => match Phone::parse(raw) {
            Ok(phone) => Some(phone),
            Err(_) => return refused(Refusal::invalid("app.err_invalid_phone")),
        },
    };
    let password = match Password::parse(form.password.clone()) {
        Ok(password) => password,
        Err(e) => return refused(refusal::password(e)),
    };
    let verify = format!("/app/verify?email={}", query_value(email.as_str()));
    match ctx.accounts.signup(&ctx.db, &page.actor, NewAccount { name, email, phone, password }).await {
        Ok(_) => Ok(page.redirect(&verify)),
        Err(e) => refused(refusal::signup(e)?),
    }
}

// Verify -------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct EmailQuery {
    email: Option<String>,
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    password: String,
}

fn verify_form(page: &Page, email: &str, refusal: Option<Refusal>, resent: bool) -> Response {
    let context = context! { email, error => refusal.map(|r| r.key), resent };
    page.render_status(status_of(refusal), "app/verify.html", context)
}

pub async fn verify_page(page: Page, query: Result<Query<EmailQuery>, QueryRejection>) -> Response {
    let email = query.ok().and_then(|Query(q)| q.email).unwrap_or_default();
    verify_form(&page, &email, None, false)
}

/// Proves the email with its code and the signup password (so the password
/// stays), then signs in with that password, as `POST /auth/verify` and
/// `POST /auth/login` would.
pub async fn verify(State(ctx): State<ApiContext>, page: Page, CsrfForm(form): CsrfForm<VerifyForm>) -> Answer {
    let refused = |r: Refusal| Ok(verify_form(&page, &form.email, Some(r), false));
    if ctx.accounts.limit_ip(&page.actor).await.is_err() {
        return refused(RATE_LIMITED);
    }
    let Ok(email) = Email::parse(&form.email) else { return refused(Refusal::invalid("app.err_invalid_email")) };
    let code = form.code.replace(' ', "");
    let contact = Contact::Email(email.clone());
    let proven = ctx.accounts.verify(&ctx.db, &page.actor, None, &contact, &code, Some(form.password.clone())).await;
    if let Err(e) = proven {
        return refused(refusal::code_flow(e)?);
    }
    match ctx.accounts.login(&ctx.db, &page.actor, email.as_str(), form.password.clone()).await {
        Ok(pair) => signed_in(&ctx, page.clone(), &pair, "/app/points").await,
        Err(e) => refused(refusal::login(e)?),
    }
}

#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    email: String,
}

/// A new verification code for the email (the same answer whether or not it is known).
pub async fn resend(State(ctx): State<ApiContext>, page: Page, CsrfForm(form): CsrfForm<ResendForm>) -> Answer {
    let refused = |r: Refusal| Ok(verify_form(&page, &form.email, Some(r), false));
    if ctx.accounts.limit_ip(&page.actor).await.is_err() {
        return refused(RATE_LIMITED);
    }
    let Ok(email) = Email::parse(&form.email) else { return refused(Refusal::invalid("app.err_invalid_email")) };
    match ctx.accounts.request_verification(&ctx.db, &page.actor, None, &Contact::Email(email)).await {
        Ok(_) => Ok(verify_form(&page, &form.email, None, true)),
        Err(e) => refused(refusal::code_flow(e)?),
    }
}

// Sign in with a code ------------------------------------------------------------

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct CodeRequestForm {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

fn code_request_form(page: &Page, identifier: &str, next: &str, refusal: Option<Refusal>) -> Response {
    let context = context! { identifier, next, next_q => query_value(next), error => refusal.map(|r| r.key) };
    page.render_status(status_of(refusal), "app/code_request.html", context)
}

fn code_entry_form(page: &Page, identifier: &str, next: &str, by_email: bool, refusal: Option<Refusal>) -> Response {
    let context = context! { identifier, next, next_q => query_value(next), by_email, error => refusal.map(|r| r.key) };
    page.render_status(status_of(refusal), "app/code_enter.html", context)
}

pub async fn code_page(page: Page, query: Result<Query<NextQuery>, QueryRejection>) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next).unwrap_or_default();
    code_request_form(&page, "", &next, None)
}

/// Sends a login code to the email or proven phone (the same answer whether
/// or not it is known), then asks for it.
pub async fn request_code(
    State(ctx): State<ApiContext>,
    page: Page,
    CsrfForm(form): CsrfForm<CodeRequestForm>,
) -> Answer {
    let refused = |r: Refusal| Ok(code_request_form(&page, &form.identifier, &form.next, Some(r)));
    if ctx.accounts.limit_ip(&page.actor).await.is_err() {
        return refused(RATE_LIMITED);
    }
    let Ok(contact) = Contact::parse(&form.identifier) else {
        return refused(Refusal::invalid("app.err_invalid_identifier"));
    };
    match ctx.accounts.request_login_code(&ctx.db, &page.actor, &contact).await {
        Ok(how) => Ok(code_entry_form(&page, contact.as_str(), &form.next, how == Accepted::ByEmail, None)),
        Err(e) => refused(refusal::code_flow(e)?),
    }
}

/// Signs in with the code (`POST /auth/otp/verify`): the console session starts.
pub async fn enter_code(State(ctx): State<ApiContext>, page: Page, CsrfForm(form): CsrfForm<CodeForm>) -> Answer {
    let refused = |r: Refusal| Ok(code_entry_form(&page, &form.identifier, &form.next, false, Some(r)));
    if ctx.accounts.limit_ip(&page.actor).await.is_err() {
        return refused(RATE_LIMITED);
    }
    let Ok(contact) = Contact::parse(&form.identifier) else {
        return refused(Refusal::invalid("app.err_invalid_identifier"));
    };
    let code = form.code.replace(' ', "");
    match ctx.accounts.login_with_code(&ctx.db, &page.actor, &contact, &code).await {
        Ok(pair) => signed_in(&ctx, page.clone(), &pair, landing(&form.next)).await,
        Err(e) => refused(refusal::code_flow(e)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_landed_on() {
        assert_eq!(landing("/app/items/1"), "/app/items/1");
        for outside in ["//evil.example", "https://evil.example", "/\\evil.example", "", "app"] {
            assert_eq!(landing(outside), "/app/items", "{outside}");
        }
    }
}
