//! The three surfaces together, on the shipped binary: `lockers-api
//! --with-workers` as a child process (simulated doors, fake SMTP and
//! Twilio), driven in headless Chromium. A sender signs up, verifies and
//! deposits in `/app`, and opens the door from the item page; an admin sees
//! the stored items on the dashboard, enrols the point's screen, force-clears
//! another locker and retries a dead job in `/admin`; the screen at the point
//! (`/kiosk`) collects the sender's item with the code from the fake SMS
//! server and shows the door number. Nothing leaves 127.0.0.1, axe finds no
//! serious violation, and every step leaves a screenshot.

use serde_json::json;

use crate::browser::Browser;
use crate::client::exchange::{id, json_of, site};
use crate::e2e::{WITHIN, reaches, sms_code};
use crate::harness::eventually;
use crate::observability::spawn_intake_with;
use crate::web_admin::{PASSWORD as ADMIN_PASSWORD, account, dead_job, figure};

const SENDER_EMAIL: &str = "meera@example.com";
const SENDER_PASSWORD: &str = "a long sender passphrase";
const RECEIVER_PHONE: &str = "+919845012345";
const ADMIN_EMAIL: &str = "ops@example.com";
const JWT_SECRET: &str = "jwt-secret-for-the-console-end-to-end-test-0123456789";

async fn accessible(browser: &Browser, page: &str) {
    let violations = browser.axe_serious().await;
    assert!(violations.is_empty(), "axe on {page}: {violations:?}");
}

async fn sign_in(browser: &Browser, url: &str, email: &str, password: &str) {
    browser.open(url).await;
    browser.fill("#identifier", email).await;
    browser.fill("#password", password).await;
    browser.click("form[action='/app/signin'] button[type=submit]").await;
}

async fn sign_out(browser: &Browser) {
    browser.click("form[action='/app/signout'] button[type=submit]").await;
    browser.text_when("Email or phone").await;
}

#[tokio::test]
async fn a_sender_an_admin_and_a_point_screen_complete_an_exchange_on_the_shipped_binary() {
    // One JWT secret for the binary and the harness, which mints the second
    // sender's token.
    let (stack, _intake) = spawn_intake_with(vec![format!("--jwt-secret={JWT_SECRET}")]).await;
    let base = stack.url("");
    let local = stack.url("/");

    // The network: one point with two lockers (an admin's JSON calls); a
    // second sender's item already stored in door 2; a dead job.
    account(&stack, ADMIN_EMAIL, "admin").await;
    let tokens = json_of(stack.login(ADMIN_EMAIL, ADMIN_PASSWORD).await, 200).await;
    let admin_token = tokens["access_token"].as_str().unwrap().to_owned();
    let site = site(&stack, &admin_token, &["M", "M"]).await;
    let point_name: String = sqlx::query_scalar("SELECT name FROM locker_points WHERE id = $1::uuid")
        .bind(&site.point)
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    let (_, other) = stack.user_with_role("user").await;
    let body = json!({ "locker_id": site.lockers[1], "name": "Spare keys", "receiver_email": "kiran@example.com" });
    let other_item = id(&json_of(stack.deposit(&other, &body).await, 201).await);
    json_of(stack.drop_off(&other, &other_item).await, 200).await;
    reaches(&stack, &other_item, "stored").await;
    let job = dead_job(&stack).await;

    let browser = Browser::start().await;
    browser.set_window(1280, 900).await;

    // The sender: sign up, verify with the emailed code, find the point, deposit.
    browser.open(&format!("{base}/app/signup")).await;
    browser.fill("#name", "Meera Iyer").await;
    browser.fill("#email", SENDER_EMAIL).await;
    browser.fill("#password", SENDER_PASSWORD).await;
    browser.click("form[action='/app/signup'] button[type=submit]").await;
    browser.text_when("Check your email").await;
    let code = stack.email_code(SENDER_EMAIL, 1).await;
    browser.fill("#code", &code).await;
    browser.fill("#password", SENDER_PASSWORD).await;
    browser.click("form[action='/app/verify'] button[type=submit]").await;
    browser.text_when("Find a locker").await;
    browser.fill("#q", &point_name).await;
    browser.click("form[action='/app/points'] button[type=submit]").await;
    let found = browser.text_when(&point_name).await;
    assert!(found.contains(&point_name), "{found}");
    accessible(&browser, "the sender's search").await;
    browser.click("a[href$='/deposit?size=M']").await;
    browser.text_when("Deposit an item").await;
    browser.fill("#name", "Wedding sari").await;
    browser.fill("#receiver_phone", RECEIVER_PHONE).await;
    browser.click("form[action$='/deposit'] button[type=submit]").await;
    let page = browser.text_when("Your drop-off code").await;
    assert!(page.contains("Your drop-off code"), "{page}");
    browser.screenshot("e2e-app-deposit").await;
    let item: String = sqlx::query_scalar("SELECT id::text FROM items WHERE name = 'Wedding sari'")
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();

    // At the locker, from the item page: the door opens (simulated), the item is stored.
    browser.click("#open-door").await;
    reaches(&stack, &item, "stored").await;
    browser.open(&format!("{base}/app/items/{item}")).await;
    let page = browser.text_when("Stored").await;
    assert!(page.contains("Stored"), "{page}");
    accessible(&browser, "the sender's item").await;
    sign_out(&browser).await;

    // The admin: two stored items on the dashboard; enrols the screen;
    // force-clears door 2; retries the dead job.
    sign_in(&browser, &format!("{base}/app/signin?next=/admin"), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    browser.text_when("Points online").await;
    assert_eq!(figure(&browser, "fig-stored").await, "2");
    assert_eq!(figure(&browser, "fig-dead").await, "1");
    let row = figure(&browser, &format!("point-{}", site.point)).await;
    assert!(row.contains(&point_name), "{row}");
    accessible(&browser, "the dashboard").await;
    browser.screenshot("e2e-admin-dashboard").await;

    browser.open(&format!("{base}/admin/points/{}", site.point)).await;
    browser.click("#enrol-screen button[type=submit]").await;
    browser.text_when("shown only this once").await;
    let link = figure(&browser, "enrolment-link").await;
    assert!(link.starts_with(&format!("/kiosk/{}/enrol?code=", site.point)), "{link}");
    accessible(&browser, "the point with its enrolment link").await;

    browser.fill("#reason-2", "sender asked to withdraw the keys").await;
    browser.click("#locker-2 form.force-clear button[type=submit]").await;
    browser.text_when("The door will open").await;
    reaches(&stack, &other_item, "force_removed").await;

    browser.open(&format!("{base}/admin/jobs")).await;
    browser.click(&format!("#job-{job} button[type=submit]")).await;
    browser.text_when("The job is back in its queue.").await;
    let ran = eventually(WITHIN, || async {
        let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&stack.app.pool)
            .await
            .unwrap();
        state != "dead"
    })
    .await;
    assert!(ran, "the retried job left the dead");
    sign_out(&browser).await;

    // The point's screen: enrolled by the link, then the receiver collects.
    browser.set_window(1080, 1920).await;
    browser.open(&format!("{base}{link}")).await;
    browser.click("#enrol button[type=submit]").await;
    browser.text_when("Collect an item").await;
    accessible(&browser, "the screen's home").await;
    browser.click("#collect").await;
    browser.fill("#contact", RECEIVER_PHONE).await;
    browser.click("#contact-form button[type=submit]").await;
    browser.find("#code").await;
    let code = sms_code(&stack, RECEIVER_PHONE).await;
    browser.fill("#code", &code).await;
    browser.click("#code-form button[type=submit]").await;
    let open = browser.text_when("Door 1 is open").await;
    assert!(open.contains("Door 1 is open"), "{open}");
    accessible(&browser, "the open door").await;
    browser.screenshot("e2e-kiosk-door-open").await;
    reaches(&stack, &item, "collected").await;

    // Back in the console: the sender's item is collected.
    browser.set_window(1280, 900).await;
    sign_in(&browser, &format!("{base}/app/signin?next=/admin/items"), ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let items = browser.text_when("Wedding sari").await;
    assert!(items.contains("Wedding sari") && items.contains("Collected"), "{items}");

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}
