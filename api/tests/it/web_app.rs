//! The sender's pages (`/app`) in a real browser and over plain HTTP: sign
//! up, verify with the code from the fake mail server, find a point by
//! typing a place, deposit, follow and cancel items, sign out and in by code;
//! every page passes axe and nothing leaves 127.0.0.1. Over HTTP: a form
//! without its CSRF token is refused, another sender's item is a 404 page,
//! and a logout through the JSON API or a password reset ends the console
//! session.

use std::collections::BTreeMap;

use serde_json::json;

use crate::browser::Browser;
use crate::client::exchange::{id, json_of};
use crate::harness::{Stack, TestApp};

const PASSWORD: &str = "a long sender passphrase";

/// A state, a city and one point ("Koramangala Metro") with lockers of `sizes`; its id.
async fn koramangala(app: &TestApp, sizes: &[&str]) -> String {
    let (_, admin) = app.user_with_role("admin").await;
    let state = json_of(app.create_state(&admin, "Karnataka").await, 201).await;
    let city =
        json_of(app.create_city(&admin, &json!({ "state_id": id(&state), "name": "Bengaluru" })).await, 201).await;
    let body = json!({ "city_id": id(&city), "name": "Koramangala Metro", "address": "80 Feet Road, Koramangala" });
    let point = id(&json_of(app.create_point(&admin, &body).await, 201).await);
    for (door, size) in (1..).zip(sizes) {
        let body = json!({ "point_id": point, "door_no": door, "size": size });
        json_of(app.create_locker(&admin, &body).await, 201).await;
    }
    point
}

/// The code of the newest mail to `address` once there are more than `seen`.
async fn next_email_code(stack: &Stack, address: &str, seen: usize) -> String {
    stack.email_code(address, seen + 1).await
}

/// An account signed up and proven through the JSON API, with `PASSWORD`.
async fn proven_account(stack: &Stack, email: &str) {
    assert_eq!(stack.signup("Ravi", email, None, PASSWORD).await.status(), 201);
    let code = stack.email_code(email, 1).await;
    assert_eq!(stack.verify_keeping_password(email, &code, PASSWORD).await.status(), 200);
}

/// A person with a browser-like cookie jar over plain HTTP (no redirects followed).
struct Visitor<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
    /// The CSRF token of the last page read.
    csrf: String,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl<'a> Visitor<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, cookies: BTreeMap::new(), csrf: String::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn read(&mut self, response: reqwest::Response) -> Answer {
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = set.to_str().unwrap().to_ascii_lowercase().contains("max-age=0");
            if value.is_empty() || expired {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        if let Some(token) = csrf_in(&body) {
            self.csrf = token;
        }
        Answer { status, location, body }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let response =
            self.app.http.get(self.app.url(path)).header("cookie", self.cookie_header()).send().await.unwrap();
        self.read(response).await
    }

    /// Posts `fields` with the last page's CSRF token (unless `with_csrf` is false).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> Answer {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        if with_csrf {
            form.push(("csrf", &csrf));
        }
        let response = self
            .app
            .http
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("origin", self.app.url(""))
            .form(&form)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// Signs in with a password on the foundation's sign-in page.
    async fn sign_in(&mut self, email: &str) {
        self.get("/app/signin").await;
        let answer = self.post("/app/signin", &[("identifier", email), ("password", PASSWORD)], true).await;
        assert_eq!(answer.status, 303, "{}", answer.body);
    }
}

fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_with_a_403_page() {
    let app = TestApp::spawn().await;
    let mut visitor = Visitor::new(&app);
    visitor.get("/app/signup").await;
    let fields = [("name", "Asha"), ("email", "asha@example.com"), ("password", PASSWORD)];
    let answer = visitor.post("/app/signup", &fields, false).await;
    assert_eq!(answer.status, 403);
    assert!(answer.body.contains("csrf_failed"), "{}", answer.body);
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(none, 0, "nothing was created");
    // With the token the same form goes through.
    let answer = visitor.post("/app/signup", &fields, true).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
}

#[tokio::test]
async fn another_senders_item_is_a_404_page_and_cannot_be_cancelled() {
    let stack = Stack::spawn(&[]).await;
    let point = koramangala(&stack, &["M", "M"]).await;
    proven_account(&stack, "owner@example.com").await;
    proven_account(&stack, "other@example.com").await;
    let mut owner = Visitor::new(&stack);
    owner.sign_in("owner@example.com").await;
    owner.get(&format!("/app/points/{point}/deposit?size=M")).await;
    let fields = [("size", "M"), ("name", "Books"), ("receiver_phone", "+919812345678")];
    let deposited = owner.post(&format!("/app/points/{point}/deposit"), &fields, true).await;
    assert_eq!(deposited.status, 201, "{}", deposited.body);
    let item: String = sqlx::query_scalar("SELECT id::text FROM items").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(owner.get(&format!("/app/items/{item}")).await.status, 200);

    let mut other = Visitor::new(&stack);
    other.sign_in("other@example.com").await;
    let page = other.get(&format!("/app/items/{item}")).await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("<html") && page.body.contains("not_found"), "an HTML error page: {}", page.body);
    other.get("/app/items").await;
    let cancel = other.post(&format!("/app/items/{item}/cancel"), &[], true).await;
    assert_eq!(cancel.status, 404);
    let status: String = sqlx::query_scalar("SELECT status FROM items").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(status, "reserved");
    assert_eq!(other.get("/app/items/not-an-id").await.status, 404);
}

/// The refresh token the console session cookie holds.
fn console_refresh_token(visitor: &Visitor<'_>) -> String {
    visitor.cookies.get("lockers_session").cloned().expect("a console session cookie")
}

#[tokio::test]
async fn a_logout_through_the_json_api_ends_the_console_session() {
    let stack = Stack::spawn(&[]).await;
    proven_account(&stack, "asha@example.com").await;
    let mut visitor = Visitor::new(&stack);
    visitor.sign_in("asha@example.com").await;
    assert_eq!(visitor.get("/app/items").await.status, 200);
    let tokens = json_of(stack.login("asha@example.com", PASSWORD).await, 200).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = console_refresh_token(&visitor);
    assert_eq!(stack.logout(Some(access), &refresh).await.status(), 204);
    let page = visitor.get("/app/items").await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/app/signin"), "back to the sign-in page");
}

#[tokio::test]
async fn a_password_reset_ends_the_console_session() {
    let stack = Stack::spawn(&[]).await;
    proven_account(&stack, "asha@example.com").await;
    let mut visitor = Visitor::new(&stack);
    visitor.sign_in("asha@example.com").await;
    assert_eq!(visitor.get("/app/receipts").await.status, 200);
    assert_eq!(stack.forgot_password("asha@example.com").await.status(), 202);
    let code = stack.email_code("asha@example.com", 2).await;
    let reset = stack.reset_password("asha@example.com", &code, "another long passphrase").await;
    assert_eq!(reset.status(), 204);
    let page = visitor.get("/app/receipts").await;
    assert_eq!(page.status, 303);
    assert!(page.location.unwrap().starts_with("/app/signin"), "back to the sign-in page");
}

/// Axe's serious or critical findings on the current page: none.
async fn accessible(browser: &Browser, page: &str) {
    let violations = browser.axe_serious().await;
    assert!(violations.is_empty(), "axe on {page}: {violations:?}");
}

#[tokio::test]
async fn a_sender_signs_up_verifies_finds_a_point_deposits_cancels_and_signs_in_again_by_code() {
    let stack = Stack::spawn(&[]).await;
    koramangala(&stack, &["M", "M", "L"]).await;
    let email = "asha@example.com";
    let browser = Browser::start().await;

    // Sign up, then the verify page with the code from the fake mail server.
    browser.open(&stack.url("/app/signup")).await;
    accessible(&browser, "signup").await;
    browser.fill("#name", "Asha Rao").await;
    browser.fill("#email", email).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form[action='/app/signup'] button[type=submit]").await;
    browser.text_when("Check your email").await;
    accessible(&browser, "verify").await;
    let code = stack.email_code(email, 1).await;
    browser.fill("#code", &code).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("form[action='/app/verify'] button[type=submit]").await;

    // Signed in: find a point by typing a place.
    browser.text_when("Find a locker").await;
    browser.fill("#q", "koramangala").await;
    browser.click("form[action='/app/points'] button[type=submit]").await;
    browser.text_when("Koramangala Metro").await;
    assert!(browser.text().await.contains("Locker points found: 1"));
    accessible(&browser, "search").await;
    browser.screenshot("app-search").await;

    // Deposit in size M for a phone receiver: the drop-off code shows.
    browser.click("a[href$='/deposit?size=M']").await;
    browser.text_when("Deposit an item").await;
    accessible(&browser, "deposit").await;
    browser.fill("#name", "Birthday present").await;
    browser.fill("#receiver_phone", "+919812345678").await;
    browser.screenshot("app-deposit").await;
    browser.click("form[action$='/deposit'] button[type=submit]").await;
    let page = browser.text_when("Your drop-off code").await;
    assert!(page.contains("Reserved") && page.contains("Door 1"), "{page}");
    let shown_code = page.split(|c: char| !c.is_ascii_digit()).any(|w| w.len() == 6);
    assert!(shown_code, "a 6-digit drop-off code on the page: {page}");
    accessible(&browser, "item").await;
    browser.screenshot("app-item").await;
    let status: String = sqlx::query_scalar("SELECT status FROM items").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(status, "reserved");

    // A second deposit, cancelled from its page.
    browser.open(&stack.url("/app/points?q=koramangala")).await;
    browser.text_when("Koramangala Metro").await;
    browser.click("a[href$='/deposit?size=M']").await;
    browser.text_when("Deposit an item").await;
    browser.fill("#name", "Old books").await;
    browser.fill("#receiver_email", "ravi@example.com").await;
    browser.click("form[action$='/deposit'] button[type=submit]").await;
    browser.text_when("Your drop-off code").await;
    browser.click("#cancel-item").await;
    browser.text_when("The reservation is cancelled").await;
    accessible(&browser, "cancelled item").await;

    // The list shows both, in their states.
    browser.open(&stack.url("/app/items")).await;
    let list = browser.text_when("Birthday present").await;
    assert!(list.contains("Old books") && list.contains("Cancelled") && list.contains("Reserved"), "{list}");
    accessible(&browser, "items").await;
    browser.screenshot("app-items").await;
    browser.open(&stack.url("/app/receipts")).await;
    browser.text_when("Receipts").await;
    accessible(&browser, "receipts").await;

    // Sign out, then in again with an emailed code.
    browser.click("form[action='/app/signout'] button[type=submit]").await;
    browser.open(&stack.url("/app/items")).await;
    browser.text_when("Sign in with an emailed or texted code instead").await;
    assert!(browser.url().await.contains("/app/signin"), "signed out");
    accessible(&browser, "sign-in with the code link").await;
    browser.open(&stack.url("/app/signin/code")).await;
    accessible(&browser, "code sign-in").await;
    let seen = stack.smtp.mails_to(email).len();
    browser.fill("#identifier", email).await;
    browser.click("form[action='/app/signin/code'] button[type=submit]").await;
    browser.text_when("Enter your code").await;
    accessible(&browser, "code entry").await;
    let code = next_email_code(&stack, email, seen).await;
    browser.fill("#code", &code).await;
    browser.click("form[action='/app/signin/code/enter'] button[type=submit]").await;
    browser.text_when("Birthday present").await;
    assert!(browser.url().await.ends_with("/app/items"));
    browser.open(&stack.url("/app/account")).await;
    browser.text_when("Your account").await;
    accessible(&browser, "account").await;

    let outside = browser.outside_requests(&stack.url("")).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn a_refused_deposit_is_a_message_on_the_form_and_the_door_opens_from_the_item_page() {
    let stack = Stack::spawn(&[]).await;
    let point = koramangala(&stack, &["M"]).await;
    proven_account(&stack, "owner@example.com").await;
    let mut owner = Visitor::new(&stack);
    owner.sign_in("owner@example.com").await;
    let deposit = format!("/app/points/{point}/deposit");
    owner.get(&format!("{deposit}?size=M")).await;
    let fields = [("size", "M"), ("name", "Books"), ("receiver_email", "ravi@example.com")];
    assert_eq!(owner.post(&deposit, &fields, true).await.status, 201);

    // The only M locker is taken: a 409 on the form, what was typed kept.
    let fields = [("size", "M"), ("name", "More books"), ("receiver_email", "ravi@example.com")];
    let refused = owner.post(&deposit, &fields, true).await;
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("No locker of this size is free"), "{}", refused.body);
    assert!(refused.body.contains(&format!("action=\"{deposit}\"")) && refused.body.contains("More books"));
    // Bad input is a message too, never an error page.
    let fields = [("size", "M"), ("name", "Books"), ("receiver_phone", "12345")];
    let invalid = owner.post(&deposit, &fields, true).await;
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("country code"), "{}", invalid.body);

    // At the locker: the door opens from the item page; cancelling is then refused on the page.
    let item: String = sqlx::query_scalar("SELECT id::text FROM items").fetch_one(&stack.pool).await.unwrap();
    owner.get(&format!("/app/items/{item}")).await;
    let opened = owner.post(&format!("/app/items/{item}/dropoff"), &[], true).await;
    assert_eq!(opened.status, 303);
    let after = owner.get(opened.location.as_deref().unwrap()).await;
    assert!(after.body.contains("Door 1 is opening"), "{}", after.body);
    let cancel = owner.post(&format!("/app/items/{item}/cancel"), &[], true).await;
    assert_eq!(cancel.status, 409);
    // (With simulated doors the item may be stored by now: then it is no longer a reservation.)
    let why = ["already asked to open", "no longer waiting for its drop-off"];
    assert!(why.iter().any(|w| cancel.body.contains(w)), "{}", cancel.body);
}

#[tokio::test]
async fn a_phone_given_at_signup_is_proven_on_the_account_page_and_then_signs_in_by_texted_code() {
    let stack = Stack::spawn(&[]).await;
    let (email, phone) = ("meera@example.com", "+919876500001");
    let mut visitor = Visitor::new(&stack);
    visitor.get("/app/signup").await;
    let fields = [("name", "Meera"), ("email", email), ("phone", phone), ("password", PASSWORD)];
    let signed_up = visitor.post("/app/signup", &fields, true).await;
    assert_eq!(signed_up.status, 303, "{}", signed_up.body);
    visitor.get(signed_up.location.as_deref().unwrap()).await;
    let code = stack.email_code(email, 1).await;
    let verified =
        visitor.post("/app/verify", &[("email", email), ("code", &code), ("password", PASSWORD)], true).await;
    assert_eq!((verified.status, verified.location.as_deref()), (303, Some("/app/points")), "{}", verified.body);

    let account = visitor.get("/app/account").await;
    assert!(account.body.contains("not proven yet"), "{}", account.body);
    let wrong = visitor.post("/app/account/phone", &[("code", "000000")], true).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("wrong, expired or already used"), "{}", wrong.body);
    let code = stack.sms_code(phone, 1).await;
    let proven = visitor.post("/app/account/phone", &[("code", &code)], true).await;
    assert_eq!(proven.status, 200);
    assert!(proven.body.contains("Your phone is proven"), "{}", proven.body);

    // Signed out, the phone now signs in with a texted code.
    assert_eq!(visitor.post("/app/signout", &[], true).await.status, 303);
    visitor.get("/app/signin/code?next=/app/receipts").await;
    let asked = visitor.post("/app/signin/code", &[("identifier", phone), ("next", "/app/receipts")], true).await;
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("Enter your code"), "{}", asked.body);
    let code = stack.sms_code(phone, 2).await;
    let fields = [("identifier", phone), ("code", code.as_str()), ("next", "/app/receipts")];
    let signed_in = visitor.post("/app/signin/code/enter", &fields, true).await;
    assert_eq!((signed_in.status, signed_in.location.as_deref()), (303, Some("/app/receipts")), "{}", signed_in.body);
    assert_eq!(visitor.get("/app/receipts").await.status, 200);
}

#[tokio::test]
async fn the_search_page_shares_the_public_read_limit_of_the_json_search() {
    let app = TestApp::spawn_with(&["--public-read-limit-per-min=3"]).await;
    koramangala(&app, &["S"]).await;
    let mut visitor = Visitor::new(&app);
    let too_long = visitor.get(&format!("/app/points?q={}", "x".repeat(201))).await;
    assert_eq!(too_long.status, 400);
    assert!(too_long.body.contains("at most 200 characters"), "a message on the page: {}", too_long.body);
    let found = visitor.get("/app/points?q=koramangla").await;
    assert_eq!(found.status, 200);
    assert!(found.body.contains("Koramangala Metro"), "a misspelling finds it: {}", found.body);
    assert_eq!(app.locker_points("q=koramangala").await.status(), 200);
    let limited = visitor.get("/app/points?q=bengaluru").await;
    assert_eq!(limited.status, 429);
    assert!(limited.body.contains("Too many tries"), "a message on the page: {}", limited.body);
}
