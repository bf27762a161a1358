//! The web console's foundation: cookie sessions bound to the refresh-token
//! family, CSRF on every form, localized error pages, embedded assets, and
//! the sign-in page in a real browser.

use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use crate::browser::Browser;
use crate::harness::Stack;

const EMAIL: &str = "console@example.com";
const PASSWORD: &str = "a long console passphrase";

/// A browser-like client over plain HTTP: keeps cookies by hand, never
/// follows redirects (the tests look at them).
pub struct Visitor {
    http: reqwest::Client,
    base: String,
    pub cookies: Vec<(String, String)>,
}

impl Visitor {
    pub fn new(base: &str) -> Visitor {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Visitor { http, base: base.trim_end_matches('/').to_owned(), cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let raw = value.to_str().unwrap();
            let (pair, attributes) = raw.split_once(';').unwrap_or((raw, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let response =
            self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.keep(&response);
        response
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    /// The CSRF token of the form on page `path` (loading it sets the cookie).
    pub async fn csrf(&mut self, path: &str) -> String {
        let html = self.get(path).await.text().await.unwrap();
        hidden(&html, "csrf").unwrap_or_else(|| panic!("no csrf field on {path}:\n{html}"))
    }
}

/// The value of the hidden input `name` in `html`.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    rest.split('"').next().map(str::to_owned)
}

async fn verified_user(stack: &Stack) {
    assert_eq!(stack.signup("Console User", EMAIL, None, PASSWORD).await.status(), 201);
    let code = stack.email_code(EMAIL, 1).await;
    assert_eq!(stack.verify_keeping_password(EMAIL, &code, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_console_session_is_a_strict_http_only_cookie_that_a_password_reset_ends() {
    let stack = Stack::spawn(&[]).await;
    verified_user(&stack).await;
    let mut visitor = Visitor::new(&stack.app.url(""));

    let csrf = visitor.csrf("/app/signin?next=/app/items").await;
    let wrong = visitor
        .post_form("/app/signin", &[("csrf", &csrf), ("identifier", EMAIL), ("password", "not it at all")])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let page = wrong.text().await.unwrap();
    assert!(page.contains("do not match"), "{page}");
    assert!(!visitor.cookies.iter().any(|(k, _)| k == "lockers_session"));

    let response = visitor
        .post_form(
            "/app/signin",
            &[("csrf", &csrf), ("identifier", EMAIL), ("password", PASSWORD), ("next", "/app/items")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/app/items");
    let set = response.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    let session = set.iter().find(|c| c.starts_with("lockers_session=")).expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict") && session.contains("Path=/"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "not Secure outside production: {session}");

    // Signed in: the sign-in page sends on; the session's CSRF token differs.
    let again = visitor.get("/app/signin?next=/app/items").await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()[LOCATION], "/app/items");

    // A password reset ends every session of the family kind: the console's too.
    assert_eq!(stack.forgot_password(EMAIL).await.status(), 202);
    let code = stack.email_code(EMAIL, 2).await;
    assert_eq!(stack.reset_password(EMAIL, &code, "a brand new passphrase").await.status(), 204);
    let after = visitor.get("/app/signin?next=/app/items").await;
    assert_eq!(after.status(), StatusCode::OK, "signed out by the reset");
}

#[tokio::test]
async fn a_refresh_of_the_cookie_token_or_signing_out_ends_the_console_session() {
    let stack = Stack::spawn(&[]).await;
    verified_user(&stack).await;

    // Someone holding the cookie's token rotates it through the JSON API: the
    // console session, whose token is now used, ends.
    let mut visitor = Visitor::new(&stack.app.url(""));
    let csrf = visitor.csrf("/app/signin").await;
    let form = [("csrf", csrf.as_str()), ("identifier", EMAIL), ("password", PASSWORD)];
    assert_eq!(visitor.post_form("/app/signin", &form).await.status(), StatusCode::SEE_OTHER);
    let token = visitor.cookies.iter().find(|(k, _)| k == "lockers_session").unwrap().1.clone();
    let refreshed = stack.app.post("/api/v1/auth/refresh", &json!({ "refresh_token": token })).await;
    assert_eq!(refreshed.status(), 200);
    let copied: serde_json::Value = refreshed.json().await.unwrap();
    assert_eq!(visitor.get("/app/signin").await.status(), StatusCode::OK, "signed out by the rotation");
    // The console found its token used: reuse, so the copier's chain dies too.
    let next = stack.app.post("/api/v1/auth/refresh", &json!({ "refresh_token": copied["refresh_token"] })).await;
    assert_eq!(next.status(), 401, "the family is revoked");
    let access = copied["access_token"].as_str().unwrap();
    assert_eq!(stack.app.get_as("/api/v1/auth/me", access).await.status(), 401);

    // Signing out needs the session's CSRF token, then revokes the family.
    let mut visitor = Visitor::new(&stack.app.url(""));
    let csrf = visitor.csrf("/app/signin").await;
    let form = [("csrf", csrf.as_str()), ("identifier", EMAIL), ("password", PASSWORD)];
    assert_eq!(visitor.post_form("/app/signin", &form).await.status(), StatusCode::SEE_OTHER);
    let stale = visitor.post_form("/app/signout", &[("csrf", &csrf)]).await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN, "the signed-out token is not the session's");
    let session_csrf = visitor.csrf("/app/signin").await;
    assert_ne!(session_csrf, csrf);
    let live_families = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(DISTINCT family_id) FROM refresh_tokens WHERE revoked_at IS NULL AND used_at IS NULL",
        )
        .fetch_one(&stack.app.pool)
        .await
        .unwrap()
    };
    assert_eq!(live_families().await, 1);
    // Signing in again over the live session replaces it.
    let form = [("csrf", session_csrf.as_str()), ("identifier", EMAIL), ("password", PASSWORD)];
    assert_eq!(visitor.post_form("/app/signin", &form).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(live_families().await, 1, "the old session ended");
    let session_csrf = visitor.csrf("/app/signin").await;
    let out = visitor.post_form("/app/signout", &[("csrf", &session_csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()[LOCATION], "/app/signin");
    assert!(!visitor.cookies.iter().any(|(k, _)| k == "lockers_session"), "the cookie is forgotten");
    let revoked: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    assert!(revoked >= 1, "the family is revoked");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_with_a_localized_page() {
    let stack = Stack::spawn(&[]).await;
    let mut visitor = Visitor::new(&stack.app.url(""));
    let csrf = visitor.csrf("/app/signin").await;

    let missing = visitor.post_form("/app/signin", &[("identifier", EMAIL), ("password", PASSWORD)]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(missing.text().await.unwrap().contains("csrf_failed"));

    let forged = visitor.post_form("/app/signin", &[("csrf", "forged"), ("identifier", EMAIL)]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // A token without its cookie (another browser's) is refused too.
    let mut stranger = Visitor::new(&stack.app.url(""));
    let replayed = stranger.post_form("/app/signin", &[("csrf", &csrf), ("identifier", EMAIL)]).await;
    assert_eq!(replayed.status(), StatusCode::FORBIDDEN);

    let hindi = visitor.post_form("/app/signin?lang=hi", &[("identifier", EMAIL)]).await;
    assert_eq!(hindi.status(), StatusCode::FORBIDDEN);
    let page = hindi.text().await.unwrap();
    assert!(page.contains("lang=\"hi\"") && page.contains("फ़ॉर्म"), "{page}");

    // Not a form at all.
    let json = reqwest::Client::new().post(stack.app.url("/app/signin")).json(&json!({})).send().await.unwrap();
    assert_eq!(json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn next_never_leads_off_the_site_and_assets_come_from_the_binary() {
    let stack = Stack::spawn(&[]).await;
    verified_user(&stack).await;
    let mut visitor = Visitor::new(&stack.app.url(""));
    let csrf = visitor.csrf("/app/signin").await;
    let form = [("csrf", csrf.as_str()), ("identifier", EMAIL), ("password", PASSWORD), ("next", "//evil.example/x")];
    let response = visitor.post_form("/app/signin", &form).await;
    assert_eq!(response.headers()[LOCATION], "/app");

    let css = stack.app.get("/assets/web/console.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    assert!(css.text().await.unwrap().contains(":focus-visible"));
    assert_eq!(stack.app.get("/assets/web/none.css").await.status(), 404);
}

#[tokio::test]
async fn the_sign_in_page_works_in_chromium_is_accessible_and_loads_nothing_from_outside() {
    let stack = Stack::spawn(&[]).await;
    verified_user(&stack).await;
    let browser = Browser::start().await;
    let local = stack.app.url("/");

    // The check can fail: a field without a label in a page without a language.
    browser.open("data:text/html,<title>control</title><p>control</p><input type=text>").await;
    let control = browser.axe_serious().await;
    assert!(control.iter().any(|v| v.starts_with("label")), "axe missed the unlabelled field: {control:?}");

    browser.open(&stack.app.url("/app/signin?next=/app/signin")).await;
    browser.set_window(1280, 900).await;
    browser.find("#identifier").await;
    let violations = browser.axe_serious().await;
    assert!(violations.is_empty(), "axe: {violations:?}");
    browser.screenshot("signin").await;
    browser.fill("#identifier", EMAIL).await;
    browser.fill("#password", "not the passphrase").await;
    browser.click("button[type=submit]").await;
    let text = browser.text_when("do not match").await;
    assert!(text.contains("do not match"), "{text}");
    browser.fill("#password", PASSWORD).await;
    browser.keys("\u{E007}").await;
    let text = browser.text_when("Signed in as Console User").await;
    assert!(text.contains("Signed in as Console User"), "{text}");
    let violations = browser.axe_serious().await;
    assert!(violations.is_empty(), "axe, signed in: {violations:?}");

    // An error page (a user in the admin console), in Tamil, is accessible too.
    browser.open(&stack.app.url("/admin?lang=ta")).await;
    let text = browser.text_when("403").await;
    assert!(text.contains("403") && text.contains("forbidden"), "{text}");
    assert!(text.contains("அனுமதி"), "the error page speaks Tamil: {text}");
    let violations = browser.axe_serious().await;
    assert!(violations.is_empty(), "axe, error page: {violations:?}");
    browser.screenshot("error-ta").await;
    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn in_production_every_console_cookie_is_secure_and_the_session_and_csrf_ones_host_only() {
    use lockers_core::accounts::admin::create_admin;
    use lockers_core::accounts::contact::Email;
    use lockers_core::accounts::password::Password;
    use lockers_core::audit::Actor;

    // Production as far as cookies are concerned (the providers it would
    // demand are beside the point here).
    let database = crate::harness::fresh_database().await;
    let mut config = crate::harness::config(&database, &[]);
    config.app_env = lockers_core::config::AppEnv::Production;
    let pool = lockers_core::db::connect(&config.database_url, 4).await.unwrap();
    let app = crate::harness::TestApp::serve(std::sync::Arc::new(config), pool, database).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let password = Password::parse(PASSWORD.to_owned()).unwrap();
    let name = lockers_core::accounts::users::Name::parse("Prod Admin").unwrap();
    create_admin(&mut conn, &Actor::operator(), &name, &Email::parse(EMAIL).unwrap(), password).await.unwrap();
    drop(conn);

    let set_cookies = |response: &reqwest::Response| -> Vec<String> {
        response.headers().get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    };
    let mut visitor = Visitor::new(&app.url(""));
    let page = visitor.get("/app/signin").await;
    let cookies = set_cookies(&page);
    let csrf_cookie = cookies.iter().find(|c| c.starts_with("__Host-lockers_csrf=")).expect("a __Host- CSRF cookie");
    assert!(csrf_cookie.contains("Secure") && csrf_cookie.contains("Path=/") && !csrf_cookie.contains("Domain"));
    let csrf = hidden(&page.text().await.unwrap(), "csrf").unwrap();
    let form = [("csrf", csrf.as_str()), ("identifier", EMAIL), ("password", PASSWORD), ("next", "/admin")];
    let signed_in = visitor.post_form("/app/signin", &form).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(&signed_in);
    let session = cookies.iter().find(|c| c.starts_with("__Host-lockers_session=")).expect("a __Host- session");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{attribute}: {session}");
    }
    assert_eq!(visitor.get("/admin").await.status(), StatusCode::OK, "the session works");

    // The kiosk's credential cookie, set by enrolment, is Secure too.
    let state = json_of_page(&app, "/api/v1/states", json!({ "name": "Goa" })).await;
    let city = json_of_page(&app, "/api/v1/cities", json!({ "state_id": state, "name": "Panaji" })).await;
    let point = json_of_page(
        &app,
        "/api/v1/locker-points",
        json!({ "city_id": city, "name": "Panaji Market", "address": "18th June Road" }),
    )
    .await;
    let point: uuid::Uuid = point.parse().unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let issued = lockers_core::places::enrolment::issue(&mut conn, &Actor::operator(), point).await.unwrap();
    drop(conn);
    let mut screen = Visitor::new(&app.url(""));
    let csrf = screen.csrf(&format!("/kiosk/{point}/enrol")).await;
    let code = issued.code.display();
    let enrolled = screen.post_form(&format!("/kiosk/{point}/enrol"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(enrolled.status(), StatusCode::SEE_OTHER);
    let cookies = set_cookies(&enrolled);
    let kiosk = cookies.iter().find(|c| c.starts_with("lockers_kiosk=")).expect("the kiosk's cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", &format!("Path=/kiosk/{point}")] {
        assert!(kiosk.contains(attribute), "{attribute}: {kiosk}");
    }
}

/// The id of what an admin's JSON POST to `path` created (the admin signs in
/// through the JSON API with the test's password).
async fn json_of_page(app: &crate::harness::TestApp, path: &str, body: serde_json::Value) -> String {
    let tokens: serde_json::Value = app
        .post("/api/v1/auth/login", &json!({ "identifier": EMAIL, "password": PASSWORD }))
        .await
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().expect("an admin's token");
    let created = app.post_as(path, token, &body).await;
    assert_eq!(created.status(), 201, "{path}");
    created.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}
