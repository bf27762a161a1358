//! The kiosk (`/kiosk/{point_id}`): enrolment by an admin's one-time link,
//! then the screen's pages, over plain HTTP and in headless Chromium (the
//! receiver's collect with the code from the fake SMS server, in English,
//! Hindi and Tamil; wrong and exhausted codes; an offline point; the drop-off
//! by code; the idle reset; axe on every page; nothing leaves 127.0.0.1).

use std::time::Duration as StdDuration;

use chrono::Duration;
use lockers_core::audit::Actor;
use lockers_core::exchange::collection::expiry::{ExpirySettings, expire_stored};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::browser::Browser;
use crate::client::exchange::json_of;
use crate::client::pickup::Receiver;
use crate::harness::{Stack, TestApp, eventually};
use crate::web::{Visitor, hidden};

const RECEIVER_PHONE: &str = "+919812345678";
const OTHER_PHONE: &str = "+919812340000";
const WAIT: StdDuration = StdDuration::from_secs(15);

async fn issue_enrolment(app: &TestApp, admin: &str, point: Uuid) -> reqwest::Response {
    app.post_as(&format!("/api/v1/locker-points/{point}/kiosk-enrolment"), admin, &json!({})).await
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// A visitor whose screen is enrolled for `point` the way a browser does it:
/// the admin's link, then its confirm form.
async fn enrolled_visitor(app: &TestApp, admin: &str, point: Uuid) -> Visitor {
    let issued = json_of(issue_enrolment(app, admin, point).await, 201).await;
    let mut screen = Visitor::new(&app.url(""));
    let page = screen.get(issued["url"].as_str().unwrap()).await.text().await.unwrap();
    let (csrf, code) = (hidden(&page, "csrf").unwrap(), hidden(&page, "code").unwrap());
    let enrolled = screen.post_form(&format!("/kiosk/{point}/enrol"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(enrolled.status(), 303);
    screen
}

// Plain HTTP ---------------------------------------------------------------------------

#[tokio::test]
async fn an_admin_issues_an_enrolment_link_that_works_once_even_when_two_screens_race_for_it() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, user) = app.user_with_role("user").await;
    let point = app.spot("Enrolment Hub", 1).await.point_id;

    assert_eq!(issue_enrolment(&app, &user, point).await.status(), 403);
    assert_eq!(issue_enrolment(&app, &admin, Uuid::now_v7()).await.status(), 404);
    let issued = json_of(issue_enrolment(&app, &admin, point).await, 201).await;
    let code = issued["code"].as_str().unwrap().to_owned();
    assert_eq!(issued["url"], format!("/kiosk/{point}/enrol?code={code}"));
    let expires: chrono::DateTime<chrono::Utc> = issued["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > Duration::minutes(9) && left <= Duration::minutes(10), "{left}");
    assert_eq!(audit_count(&app, "locker_point.issue_kiosk_enrolment").await, 1);

    // The link shows a confirm button; the credential is nowhere on the page.
    let mut screen = Visitor::new(&app.url(""));
    let page = screen.get(issued["url"].as_str().unwrap()).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Set up this screen") && page.contains("Enrolment Hub"), "{page}");
    let csrf = hidden(&page, "csrf").unwrap();

    // Two screens confirm at once: exactly one is enrolled.
    let path = format!("/kiosk/{point}/enrol");
    let cookies = screen.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let post =
        || app.http.post(app.url(&path)).header(COOKIE, &cookies).form(&[("csrf", &csrf), ("code", &code)]).send();
    let (a, b) = tokio::join!(post(), post());
    let mut answers = [a.unwrap(), b.unwrap()];
    answers.sort_by_key(|r| r.status().as_u16());
    let [won, lost] = answers;
    assert_eq!((won.status().as_u16(), lost.status().as_u16()), (303, 401));
    assert_eq!(won.headers()[LOCATION], format!("/kiosk/{point}"));
    let cookie = won
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("lockers_kiosk="))
        .expect("the kiosk cookie");
    for part in [&format!("Path=/kiosk/{point};"), "HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP in development: {cookie}");
    assert!(lost.text().await.unwrap().contains("This set-up code is wrong"));
    assert_eq!(audit_count(&app, "locker_point.kiosk_enrolled").await, 1);

    // The cookie holds the point's kiosk token: the JSON route takes it too.
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    assert_eq!(app.point_pickup_request(point, Some(&token), RECEIVER_PHONE).await.status(), 202);

    // Used once: a third try fails too.
    let again = screen.post_form(&path, &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(again.status(), 401);
}

#[tokio::test]
async fn an_expired_or_retired_enrolment_code_fails_and_a_code_works_only_at_its_own_point() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (here, there) = (app.spot("Here", 1).await.point_id, app.spot("There", 1).await.point_id);
    let mut screen = Visitor::new(&app.url(""));
    let csrf = screen.csrf(&format!("/kiosk/{here}/enrol")).await;
    let code_of = |v: Value| v["code"].as_str().unwrap().to_owned();

    let expired = code_of(json_of(issue_enrolment(&app, &admin, here).await, 201).await);
    sqlx::query("UPDATE kiosk_enrolments SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut redeem = async |point: Uuid, code: &str| {
        screen.post_form(&format!("/kiosk/{point}/enrol"), &[("csrf", &csrf), ("code", code)]).await.status().as_u16()
    };
    assert_eq!(redeem(here, &expired).await, 401, "expired");

    let older = code_of(json_of(issue_enrolment(&app, &admin, here).await, 201).await);
    let newer = code_of(json_of(issue_enrolment(&app, &admin, here).await, 201).await);
    assert_eq!(redeem(here, &older).await, 401, "a newer code retires the older");
    assert_eq!(redeem(there, &newer).await, 401, "another point's code");
    assert_eq!(redeem(here, "not a code").await, 401);
    assert_eq!(redeem(here, &newer.to_lowercase().replace('-', " ")).await, 303, "typed loosely, still the code");
}

#[tokio::test]
async fn a_screen_without_the_points_cookie_is_not_set_up_and_its_forms_answer_401() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let point = app.spot("Unset", 1).await.point_id;
    let mut stranger = Visitor::new(&app.url(""));

    let home = stranger.get(&format!("/kiosk/{point}")).await;
    assert_eq!(home.status(), 401);
    let home = home.text().await.unwrap();
    assert!(home.contains("This screen is not set up"), "{home}");
    assert!(!home.contains("/collect") && !home.contains("/dropoff"), "no actions offered");

    // A CSRF token from a page, but no kiosk cookie.
    let csrf = stranger.csrf(&format!("/kiosk/{point}/enrol")).await;
    for (path, field, value) in
        [("collect", "contact", RECEIVER_PHONE), ("collect/code", "code", "123456"), ("dropoff", "code", "123456")]
    {
        let response = stranger.post_form(&format!("/kiosk/{point}/{path}"), &[("csrf", &csrf), (field, value)]).await;
        assert_eq!(response.status(), 401, "{path}");
        assert!(response.text().await.unwrap().contains("This screen is not set up"), "{path}");
    }
    assert!(app.outbox_to(RECEIVER_PHONE).await.is_empty());

    // Another point's screen is not set up here; nor is this one once an admin rotates its token.
    let elsewhere = app.spot("Elsewhere", 1).await.point_id;
    let mut other = enrolled_visitor(&app, &admin, elsewhere).await;
    assert_eq!(other.get(&format!("/kiosk/{elsewhere}")).await.status(), 200);
    assert_eq!(other.get(&format!("/kiosk/{point}")).await.status(), 401);
    let mut mine = enrolled_visitor(&app, &admin, point).await;
    assert_eq!(mine.get(&format!("/kiosk/{point}")).await.status(), 200);
    app.kiosk_token(point).await;
    assert_eq!(mine.get(&format!("/kiosk/{point}")).await.status(), 401);
}

#[tokio::test]
async fn a_kiosk_form_without_its_csrf_token_is_refused() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let point = app.spot("Forms", 1).await.point_id;
    let mut screen = enrolled_visitor(&app, &admin, point).await;
    let csrf = screen.csrf(&format!("/kiosk/{point}/collect")).await;

    let path = format!("/kiosk/{point}/collect");
    assert_eq!(screen.post_form(&path, &[("contact", RECEIVER_PHONE)]).await.status(), 403);
    assert_eq!(screen.post_form(&path, &[("csrf", "forged"), ("contact", RECEIVER_PHONE)]).await.status(), 403);
    assert!(app.outbox_to(RECEIVER_PHONE).await.is_empty());
    // With it: on to the code form, the same answer whoever asks.
    let sent = screen.post_form(&path, &[("csrf", &csrf), ("contact", RECEIVER_PHONE)]).await;
    assert_eq!(sent.status(), 303);
    assert_eq!(sent.headers()[LOCATION], format!("/kiosk/{point}/collect/code"));
}

#[tokio::test]
async fn the_sender_of_an_expired_item_takes_it_back_the_same_way_at_the_screen() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let spot = stack.spot("Return Point", 2).await;
    let sender = stack.sender(None).await;
    let to = Receiver { phone: Some(RECEIVER_PHONE), email: None };
    let item = stack.stored_item_since(&sender, spot.lockers[1], to, Duration::minutes(10)).await;
    let settings = ExpirySettings::from_config(&stack.config);
    let mut conn = stack.pool.acquire().await.unwrap();
    expire_stored(&mut conn, &Actor::system(), chrono::Utc::now() + Duration::hours(73), &settings).await.unwrap();
    let point = spot.point_id;
    let mut screen = enrolled_visitor(&stack, &admin, point).await;

    let page = screen.get(&format!("/kiosk/{point}/collect")).await.text().await.unwrap();
    assert!(page.contains("Sent an item that was not collected in time?"), "the page says so:\n{page}");
    let csrf = hidden(&page, "csrf").unwrap();
    let asked =
        screen.post_form(&format!("/kiosk/{point}/collect"), &[("csrf", &csrf), ("contact", &sender.email)]).await;
    assert_eq!(asked.status(), 303);
    let with_code = || stack.smtp.mails_to(&sender.email).into_iter().find(|m| m.decoded().contains("to take back"));
    assert!(eventually(WAIT, || async { with_code().is_some() }).await, "no return code mailed");
    let code = with_code().unwrap().code().unwrap();

    let opened = screen.post_form(&format!("/kiosk/{point}/collect/code"), &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(opened.status(), 200);
    let page = opened.text().await.unwrap();
    assert!(page.contains("Door 2 is open"), "{page}");
    assert!(eventually(WAIT, || async { stack.item_status(item).await == "returned" }).await);
}

// In a browser ------------------------------------------------------------------------

/// Opens the admin's enrolment link in `browser` and confirms it; the home screen shows.
async fn enrol_in(browser: &Browser, app: &TestApp, admin: &str, point: Uuid) {
    let issued = json_of(issue_enrolment(app, admin, point).await, 201).await;
    browser.open(&app.url(issued["url"].as_str().unwrap())).await;
    assert_no_serious_violations(browser, "enrol").await;
    browser.click("#enrol button[type=submit]").await;
    let text = browser.text_when("Collect an item").await;
    assert!(text.contains("Drop off an item"), "{text}");
}

async fn assert_no_serious_violations(browser: &Browser, page: &str) {
    let found = browser.axe_serious().await;
    assert!(found.is_empty(), "{page}: axe found {found:#?}");
}

/// The receiver's way at the screen: contact, the code from the fake SMS
/// server (the `nth` to that phone), the door. `expect` is the page's text
/// after each step, in the page's language.
async fn collect_in(browser: &Browser, stack: &Stack, phone: &str, nth: usize, expect: [&str; 3]) -> String {
    browser.click("#collect").await;
    browser.text_when(expect[0]).await;
    assert_no_serious_violations(browser, "collect").await;
    browser.fill("#contact", phone).await;
    browser.click("#contact-form button[type=submit]").await;
    let text = browser.text_when(expect[1]).await;
    assert!(text.contains(expect[1]), "{text}");
    assert_no_serious_violations(browser, "code").await;
    let code = stack.sms_code(phone, nth).await;
    browser.fill("#code", &code).await;
    browser.click("#code-form button[type=submit]").await;
    let text = browser.text_when(expect[2]).await;
    assert!(text.contains(expect[2]), "{text}");
    text
}

#[tokio::test]
async fn a_receiver_collects_at_the_enrolled_screen_with_the_code_from_the_sms_and_sees_the_door() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let spot = stack.spot("Kiosk Central", 2).await;
    let sender = stack.sender(None).await;
    let to = Receiver { phone: Some(RECEIVER_PHONE), email: None };
    let item = stack.stored_item_since(&sender, spot.lockers[1], to, Duration::minutes(30)).await;
    let browser = Browser::start().await;
    let local = stack.url("/");

    // Not set up until the admin's link is opened on the screen.
    browser.open(&stack.url(&format!("/kiosk/{}", spot.point_id))).await;
    browser.text_when("This screen is not set up").await;
    assert!(!browser.exists("#collect").await);
    assert_no_serious_violations(&browser, "not set up").await;
    enrol_in(&browser, &stack, &admin, spot.point_id).await;
    assert_no_serious_violations(&browser, "home").await;
    browser.set_window(1080, 1920).await;
    browser.screenshot("kiosk-portrait").await;
    browser.set_window(1920, 1080).await;
    browser.screenshot("kiosk-landscape").await;

    // The keypad types into the field (scripts on); a physical keyboard does too (fill).
    browser.click("#collect").await;
    browser.find("[data-keypad=contact]:not([hidden])").await;
    for key in ["+", "9", "1"] {
        browser.click(&format!("[data-keypad=contact] [data-key=\"{key}\"]")).await;
    }
    browser.click("[data-keypad=contact] [data-key=del]").await;
    browser.screenshot("kiosk-keypad").await;
    let typed = browser.run("return document.getElementById('contact').value", json!([])).await;
    assert_eq!(typed, "+9");
    browser.click(".kiosk-nav a").await;
    browser.text_when("Drop off an item").await;

    let expect = ["Your phone number or email", "If an item waits for you here", "Door 2 is open"];
    let text = collect_in(&browser, &stack, RECEIVER_PHONE, 1, expect).await;
    assert!(text.contains("Take your item and close the door"), "{text}");
    let big = browser.run("return document.querySelector('.kiosk-door-number').textContent", json!([])).await;
    assert_eq!(big, "2");
    assert_no_serious_violations(&browser, "door open").await;
    browser.screenshot("kiosk-door-open").await;
    assert!(eventually(WAIT, || async { stack.item_status(item).await == "collected" }).await);

    // A stranger's contact gets the very same answer, and no message.
    browser.click("#done").await;
    let expect = ["Your phone number or email", "If an item waits for you here"];
    browser.click("#collect").await;
    browser.text_when(expect[0]).await;
    browser.fill("#contact", "+919899999999").await;
    browser.click("#contact-form button[type=submit]").await;
    assert!(browser.text_when(expect[1]).await.contains(expect[1]));
    assert_eq!(stack.sent_to("+919899999999"), 0);

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn the_screen_speaks_hindi_and_tamil_down_to_the_open_door() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let spot = stack.spot("Bhasha Point", 2).await;
    let sender = stack.sender(None).await;
    let to = |phone| Receiver { phone: Some(phone), email: None };
    stack.stored_item_since(&sender, spot.lockers[0], to(RECEIVER_PHONE), Duration::minutes(5)).await;
    stack.stored_item_since(&sender, spot.lockers[1], to(OTHER_PHONE), Duration::minutes(5)).await;
    let browser = Browser::start().await;
    let local = stack.url("/");
    let home = stack.url(&format!("/kiosk/{}", spot.point_id));
    enrol_in(&browser, &stack, &admin, spot.point_id).await;
    browser.set_window(1080, 1920).await;

    browser.open(&format!("{home}?lang=hi")).await;
    let text = browser.text_when("सामान लें").await;
    assert!(text.contains("सामान जमा करें"), "{text}");
    assert_no_serious_violations(&browser, "home (hi)").await;
    let lang = browser.run("return document.documentElement.lang", json!([])).await;
    assert_eq!(lang, "hi");
    let expect = ["आपका फ़ोन नंबर या ईमेल", "अगर यहाँ आपके लिए कोई सामान है", "दरवाज़ा 1 खुला है"];
    let text = collect_in(&browser, &stack, RECEIVER_PHONE, 1, expect).await;
    assert!(text.contains("अपना सामान लें और दरवाज़ा बंद करें"), "{text}");
    assert_no_serious_violations(&browser, "door (hi)").await;
    browser.screenshot("kiosk-hi").await;

    // The switch on the screen itself, to Tamil.
    browser.click("#done").await;
    browser.text_when("सामान लें").await;
    browser.click(".kiosk-langs a[lang=ta]").await;
    browser.text_when("பொருளைப் பெறுங்கள்").await;
    assert_no_serious_violations(&browser, "home (ta)").await;
    let expect = ["உங்கள் தொலைபேசி எண் அல்லது மின்னஞ்சல்", "இங்கே உங்களுக்காக ஒரு பொருள் காத்திருந்தால்", "கதவு 2 திறந்துள்ளது"];
    let text = collect_in(&browser, &stack, OTHER_PHONE, 1, expect).await;
    assert!(text.contains("கதவை மூடுங்கள்"), "{text}");
    assert_no_serious_violations(&browser, "door (ta)").await;
    browser.screenshot("kiosk-ta").await;

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

/// Types `code` into the code form and sends it, waiting for the answer
/// (a fresh page, whose field is empty again).
async fn submit_code(browser: &Browser, code: &str) {
    browser.fill("#code", code).await;
    browser.click("#code-form button[type=submit]").await;
    let check = "const f = document.getElementById('code'); return !!f && f.value === '';";
    for _ in 0..150 {
        if browser.run(check, json!([])).await == json!(true) {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    panic!("no answer to the code form:\n{}", browser.text().await);
}

#[tokio::test]
async fn wrong_codes_say_so_and_too_many_stop_the_screen_for_a_while_without_revealing_anything() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let spot = stack.spot("Guarded Point", 1).await;
    let sender = stack.sender(None).await;
    let to = Receiver { phone: Some(RECEIVER_PHONE), email: None };
    let item = stack.stored_item_since(&sender, spot.lockers[0], to, Duration::minutes(5)).await;
    let browser = Browser::start().await;
    let local = stack.url("/");
    enrol_in(&browser, &stack, &admin, spot.point_id).await;

    browser.click("#collect").await;
    browser.fill("#contact", RECEIVER_PHONE).await;
    browser.click("#contact-form button[type=submit]").await;
    browser.text_when("If an item waits for you here").await;
    let code = stack.sms_code(RECEIVER_PHONE, 1).await;
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);

    submit_code(&browser, &wrong).await;
    let text = browser.text_when("That code is wrong").await;
    assert!(text.contains("That code is wrong, has expired or was already used"), "{text}");
    assert_no_serious_violations(&browser, "wrong code").await;

    // The point's hourly allowance of wrong codes (20): then even the right one waits.
    for n in 2..=20 {
        submit_code(&browser, &format!("{:06}", (code.parse::<u32>().unwrap() + n) % 1_000_000)).await;
    }
    submit_code(&browser, &code).await;
    let text = browser.text_when("Too many tries").await;
    assert!(text.contains("Too many tries. Please wait"), "{text}");
    assert_no_serious_violations(&browser, "too many tries").await;
    assert_eq!(stack.item_status(item).await, "stored", "no door opened");

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn a_sender_drops_off_by_code_and_an_idle_screen_returns_home() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (_, sender) = stack.user_with_role("user").await;
    let spot = stack.spot("Drop Point", 3).await;
    let body = json!({ "locker_id": spot.lockers[2], "name": "Books", "receiver_phone": RECEIVER_PHONE });
    let item = json_of(stack.deposit(&sender, &body).await, 201).await;
    let code = item["dropoff_code"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;
    let local = stack.url("/");
    let home = stack.url(&format!("/kiosk/{}", spot.point_id));
    enrol_in(&browser, &stack, &admin, spot.point_id).await;

    browser.click("#dropoff").await;
    browser.text_when("Your drop-off code").await;
    assert_no_serious_violations(&browser, "drop-off").await;
    // Typed on the screen's keypad.
    for digit in code.chars() {
        browser.click(&format!("[data-keypad=code] [data-key=\"{digit}\"]")).await;
    }
    browser.click("#dropoff-form button[type=submit]").await;
    let text = browser.text_when("Door 3 is open").await;
    assert!(text.contains("Put the item in and close the door"), "{text}");
    let id = item["id"].as_str().unwrap().parse().unwrap();
    assert!(eventually(WAIT, || async { stack.item_status(id).await == "stored" }).await);

    // The same code again opens nothing.
    browser.open(&format!("{home}/dropoff")).await;
    browser.fill("#code", &code).await;
    browser.click("#dropoff-form button[type=submit]").await;
    browser.text_when("That code is wrong").await;

    // Left alone, a page goes back home (?idle=5 for the test; a minute by default).
    browser.open(&format!("{home}/collect?idle=5")).await;
    browser.fill("#contact", "+9198").await;
    let back =
        eventually(StdDuration::from_secs(15), || async { browser.url().await == format!("{home}?idle=5") }).await;
    assert!(back, "still at {}", browser.url().await);
    assert!(browser.text_when("Drop off an item").await.contains("Collect an item"));

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn an_offline_point_says_so_and_offers_nothing_to_open() {
    // Real door controllers: a point is online only while it sends heartbeats; this one sends none.
    let stack = Stack::spawn(&["--door-driver=http"]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let spot = stack.spot("Quiet Point", 1).await;
    let browser = Browser::start().await;
    let local = stack.url("/");
    let home = stack.url(&format!("/kiosk/{}", spot.point_id));

    let issued = json_of(issue_enrolment(&stack, &admin, spot.point_id).await, 201).await;
    browser.open(&stack.url(issued["url"].as_str().unwrap())).await;
    browser.click("#enrol button[type=submit]").await;
    let text = browser.text_when("This locker point is offline").await;
    assert!(text.contains("no door can open right now"), "{text}");
    assert!(!browser.exists("#collect").await && !browser.exists("#dropoff").await);
    assert_no_serious_violations(&browser, "offline").await;

    browser.open(&format!("{home}/dropoff?lang=ta")).await;
    let text = browser.text_when("இணைப்பில் இல்லை").await;
    assert!(text.contains("இந்த லாக்கர் மையம் இப்போது இணைப்பில் இல்லை"), "{text}");
    assert!(!browser.exists("#dropoff-form").await);

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}
