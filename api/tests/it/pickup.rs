//! Pickup and return through real HTTP, with the simulated door driver (it
//! acknowledges the open and reports the door closed through the controller
//! event use case), fake Twilio and SMTP. Stored items are made with SQL
//! (client/pickup.rs) until the deposit flow lands.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use lockers_core::audit::Actor;
use lockers_core::exchange::collection::expiry::{ExpirySettings, abandon_expired, expire_stored};
use lockers_core::sweep::{self, SweepSettings};
use serde_json::Value;
use uuid::Uuid;

use crate::client::pickup::Receiver;
use crate::harness::{Stack, TestApp, eventually};

const TRUSTED: &str = "--trusted-proxies=127.0.0.1/32";
const RECEIVER_PHONE: &str = "+919812345678";
const RECEIVER_EMAIL: &str = "ravi@example.com";
const SENDER_PHONE: &str = "+919800000001";
const WAIT: StdDuration = StdDuration::from_secs(15);

fn by_phone() -> Receiver<'static> {
    Receiver { phone: Some(RECEIVER_PHONE), email: None }
}

fn by_email() -> Receiver<'static> {
    Receiver { phone: None, email: Some(RECEIVER_EMAIL) }
}

async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let (status, body) = json(response).await;
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn wrong(code: &str, offset: u32) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + offset) % 1_000_000)
}

async fn reaches(app: &TestApp, item: Uuid, status: &str) -> bool {
    eventually(WAIT, || async { app.item_status(item).await == status }).await
}

async fn door_commands(app: &TestApp, item: Uuid) -> Vec<(String, String)> {
    sqlx::query_as("SELECT reason, status FROM door_commands WHERE item_id = $1 ORDER BY created_at")
        .bind(item)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// The mails to `address` whose text contains `needle`, waiting for one.
async fn mail_with(stack: &Stack, address: &str, needle: &str) -> String {
    let found =
        eventually(WAIT, || async { stack.smtp.mails_to(address).iter().any(|m| m.decoded().contains(needle)) }).await;
    assert!(found, "no mail to {address} with {needle:?}: {:?}", stack.smtp.mails_to(address));
    stack.smtp.mails_to(address).into_iter().map(|m| m.decoded()).find(|m| m.contains(needle)).unwrap()
}

async fn sms_with(stack: &Stack, phone: &str, needle: &str) -> String {
    let texts = || stack.twilio.messages().into_iter().filter(|m| m.to == phone).map(|m| m.body).collect::<Vec<_>>();
    let found = eventually(WAIT, || async { texts().iter().any(|b| b.contains(needle)) }).await;
    assert!(found, "no SMS to {phone} with {needle:?}: {:?}", texts());
    texts().into_iter().find(|b| b.contains(needle)).unwrap()
}

#[tokio::test]
async fn a_receiver_collects_with_an_sms_code_and_the_sender_is_told_the_amount() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Koramangala", 2).await;
    let sender = stack.sender(Some(SENDER_PHONE)).await;
    let locker = spot.lockers[0];
    let item = stack.stored_item_since(&sender, locker, by_phone(), Duration::minutes(61)).await;

    let (status, asked) = json(stack.pickup_request(locker, RECEIVER_PHONE).await).await;
    assert_eq!(status, 202);
    let code = stack.sms_code(RECEIVER_PHONE, 1).await;
    let (status, opened) = json(stack.pickup_collect(locker, &code).await).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["item_id"], item.to_string());
    // Answered before the controller acknowledges: the quote for 61 minutes is two started hours.
    assert_eq!(opened["opening"], true);
    assert_eq!(opened["amount_paise"], 10_000);
    assert_eq!(opened["currency"], "INR");
    assert!(["stored", "collected"].contains(&opened["status"].as_str().unwrap()), "{opened}");

    assert!(reaches(&stack, item, "collected").await);
    assert!(eventually(WAIT, || async { stack.locker_status(locker).await == "available" }).await);
    assert_eq!(stack.bill(item).await, Some((10_000, 2)), "the ledger matches the quote");
    assert_eq!(door_commands(&stack, item).await, [("pickup".to_owned(), "acked".to_owned())]);

    let mail = mail_with(&stack, &sender.email, "was collected").await;
    assert!(mail.contains("INR 100.00"), "{mail}");
    let text = sms_with(&stack, SENDER_PHONE, "was collected").await;
    assert!(text.contains("INR 100.00"), "{text}");
    sms_with(&stack, RECEIVER_PHONE, "you collected").await;

    // Single use: the same code again opens nothing.
    assert_eq!(error_code(stack.pickup_collect(locker, &code).await).await, (401, "invalid_code".to_owned()));
    // And the request answered like any other.
    assert_eq!(asked["status"], "accepted");
}

#[tokio::test]
async fn an_email_only_receiver_collects_with_an_email_code_and_gets_a_receipt() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Indiranagar", 1).await;
    let sender = stack.sender(None).await;
    let locker = spot.lockers[0];
    let item = stack.stored_item_since(&sender, locker, by_email(), Duration::minutes(1)).await;

    // Contacts are normalised: the receiver may type their email in any case.
    assert_eq!(stack.pickup_request(locker, "Ravi@Example.COM").await.status(), 202);
    let code = stack.email_code(RECEIVER_EMAIL, 1).await;
    let (status, opened) = json(stack.pickup_collect(locker, &code).await).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["amount_paise"], 5_000);

    assert!(reaches(&stack, item, "collected").await);
    assert_eq!(stack.bill(item).await, Some((5_000, 1)));
    let mail = mail_with(&stack, &sender.email, "was collected").await;
    assert!(mail.contains("INR 50.00"), "{mail}");
    mail_with(&stack, RECEIVER_EMAIL, "You collected").await;
    assert!(eventually(WAIT, || async { stack.locker_status(locker).await == "available" }).await);
    // No phone on the sender's account: no SMS at all.
    assert!(stack.twilio.messages().is_empty());
}

#[tokio::test]
async fn an_unknown_contact_gets_the_same_answer_and_no_message() {
    let app = TestApp::spawn().await;
    let spot = app.spot("Jayanagar", 1).await;
    let sender = app.sender(None).await;
    let locker = spot.lockers[0];
    app.stored_item_since(&sender, locker, by_phone(), Duration::minutes(5)).await;

    let (known_status, known) = json(app.pickup_request(locker, RECEIVER_PHONE).await).await;
    let (stranger_status, stranger) = json(app.pickup_request(locker, "+919899999999").await).await;
    let (nobody_status, nobody) = json(app.pickup_request(Uuid::now_v7(), RECEIVER_PHONE).await).await;
    assert_eq!((known_status, stranger_status, nobody_status), (202, 202, 202));
    assert_eq!(known, stranger);
    assert_eq!(known, nobody);
    // The outbox is written in the request's transaction: what is not there now never goes.
    assert_eq!(app.outbox_to(RECEIVER_PHONE).await.len(), 1);
    assert!(app.outbox_to("+919899999999").await.is_empty());
    // The sender's contacts get no pickup code for a stored item either.
    assert_eq!(app.pickup_request(locker, &sender.email).await.status(), 202);
    assert!(app.outbox_to(&sender.email).await.is_empty());
    // Malformed contacts are a clear 4xx.
    assert_eq!(error_code(app.pickup_request(locker, "not a contact").await).await.0, 422);
}

#[tokio::test]
async fn request_limits_refuse_known_and_unknown_alike_and_a_stranger_cannot_block_the_receiver() {
    let app = TestApp::spawn_with(&[TRUSTED]).await;
    let spot = app.spot("Whitefield", 1).await;
    let sender = app.sender(None).await;
    let locker = spot.lockers[0];
    app.stored_item_since(&sender, locker, by_phone(), Duration::minutes(5)).await;
    let stranger = Some("203.0.113.66");

    for contact in [RECEIVER_PHONE, "+919899999999"] {
        for _ in 0..3 {
            assert_eq!(app.pickup_request_from(locker, contact, stranger).await.status(), 202);
        }
        let limited = app.pickup_request_from(locker, contact, stranger).await;
        assert!(limited.headers().contains_key("retry-after"));
        assert_eq!(error_code(limited).await, (429, "rate_limited".to_owned()), "{contact}");
    }
    let sent_before = app.outbox_to(RECEIVER_PHONE).await.len();
    // The receiver, from their own address, is not held off by the stranger.
    assert_eq!(app.pickup_request_from(locker, RECEIVER_PHONE, Some("198.51.100.7")).await.status(), 202);
    assert_eq!(app.outbox_to(RECEIVER_PHONE).await.len(), sent_before + 1);
}

#[tokio::test]
async fn five_wrong_codes_kill_the_code_and_a_fresh_one_works() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Malleswaram", 1).await;
    let sender = stack.sender(None).await;
    let locker = spot.lockers[0];
    let item = stack.stored_item_since(&sender, locker, by_phone(), Duration::minutes(5)).await;

    assert_eq!(stack.pickup_request(locker, RECEIVER_PHONE).await.status(), 202);
    let code = stack.sms_code(RECEIVER_PHONE, 1).await;
    for offset in 1..=5 {
        let (status, code) = error_code(stack.pickup_collect(locker, &wrong(&code, offset)).await).await;
        assert_eq!((status, code.as_str()), (401, "invalid_code"));
    }
    assert_eq!(error_code(stack.pickup_collect(locker, &code).await).await.0, 401, "dead after 5 wrong tries");
    assert_eq!(error_code(stack.pickup_collect(locker, "12ab").await).await.0, 401, "malformed counts as wrong");
    assert!(door_commands(&stack, item).await.is_empty());

    assert_eq!(stack.pickup_request(locker, RECEIVER_PHONE).await.status(), 202);
    let fresh = stack.sms_code(RECEIVER_PHONE, 2).await;
    assert_eq!(stack.pickup_collect(locker, &fresh).await.status(), 200);
    assert!(reaches(&stack, item, "collected").await);
}

#[tokio::test]
async fn wrong_codes_at_one_locker_are_bounded_per_hour_from_any_address() {
    let app = TestApp::spawn_with(&[TRUSTED]).await;
    let spot = app.spot("Hebbal", 1).await;
    let sender = app.sender(None).await;
    let locker = spot.lockers[0];
    app.stored_item_since(&sender, locker, by_phone(), Duration::minutes(5)).await;
    for n in 0..10 {
        let ip = format!("192.0.2.{}", n + 1);
        let response = app.pickup_collect_from(locker, &format!("{n:06}"), Some(&ip)).await;
        assert_eq!(response.status(), 401);
    }
    let (status, code) = error_code(app.pickup_collect_from(locker, "999999", Some("192.0.2.200")).await).await;
    assert_eq!((status, code.as_str()), (429, "rate_limited"), "the locker's hourly allowance is spent");
}

#[tokio::test]
async fn thirty_two_concurrent_collects_with_the_right_code_open_the_door_once() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Basavanagudi", 1).await;
    let sender = stack.sender(None).await;
    let locker = spot.lockers[0];
    let item = stack.stored_item_since(&sender, locker, by_phone(), Duration::minutes(5)).await;
    assert_eq!(stack.pickup_request(locker, RECEIVER_PHONE).await.status(), 202);
    let code = stack.sms_code(RECEIVER_PHONE, 1).await;

    let attempts = (0..32).map(|_| stack.pickup_collect(locker, &code));
    let statuses: Vec<u16> = futures::future::join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [200, 401, 429].contains(s)), "{statuses:?}");
    assert!(reaches(&stack, item, "collected").await);
    assert_eq!(door_commands(&stack, item).await.len(), 1, "one door command, one pulse");
}

/// The codes of a point message: (door, code), from "CODE to collect "NAME" from door N".
fn codes_by_door(text: &str) -> Vec<(i32, String)> {
    let words: Vec<&str> = text.split(|c: char| c.is_whitespace() || c == ';' || c == '.' || c == ':').collect();
    let mut found = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if w.len() == 6 && w.bytes().all(|b| b.is_ascii_digit()) {
            let door = words[i..].iter().position(|w| *w == "door").and_then(|p| words[i + p + 1].parse().ok());
            found.push((door.unwrap(), (*w).to_owned()));
        }
    }
    found
}

#[tokio::test]
async fn a_point_screen_sends_one_message_with_a_code_per_item_and_opens_each_door() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("MG Road", 3).await;
    let other = stack.spot("Brigade Road", 1).await;
    let sender = stack.sender(None).await;
    let first = stack.stored_item_since(&sender, spot.lockers[0], by_email(), Duration::minutes(5)).await;
    let second = stack.stored_item_since(&sender, spot.lockers[2], by_email(), Duration::minutes(5)).await;
    let kiosk = stack.kiosk_token(spot.point_id).await;
    let other_kiosk = stack.kiosk_token(other.point_id).await;

    assert_eq!(stack.point_pickup_request(spot.point_id, Some(&kiosk), RECEIVER_EMAIL).await.status(), 202);
    mail_with(&stack, RECEIVER_EMAIL, "your codes at MG Road").await;
    // The text part (the HTML part says the same).
    let text = stack.smtp.mails_to(RECEIVER_EMAIL)[0].text_part().unwrap();
    let codes = codes_by_door(&text);
    assert_eq!(codes.iter().map(|(door, _)| *door).collect::<Vec<_>>(), [1, 3], "{text}");
    assert_eq!(stack.smtp.mails_to(RECEIVER_EMAIL).len(), 1, "one message for both");

    // Another point's screen: its own path refuses the code, this path refuses its token.
    let (status, error) =
        error_code(stack.point_pickup_collect(other.point_id, Some(&other_kiosk), &codes[0].1).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_code"));
    let (status, error) =
        error_code(stack.point_pickup_collect(spot.point_id, Some(&other_kiosk), &codes[0].1).await).await;
    assert_eq!((status, error.as_str()), (403, "wrong_point"));
    // A point code typed at a locker of the point opens only that locker's own item.
    let (status, _) = error_code(stack.pickup_collect(spot.lockers[1], &codes[0].1).await).await;
    assert_eq!(status, 401);

    for ((door, code), item) in codes.iter().zip([first, second]) {
        let (status, opened) = json(stack.point_pickup_collect(spot.point_id, Some(&kiosk), code).await).await;
        assert_eq!(status, 200, "{opened}");
        assert_eq!(opened["door_no"], *door);
        assert_eq!(opened["item_id"], item.to_string());
        assert!(reaches(&stack, item, "collected").await);
    }
    for locker in [spot.lockers[0], spot.lockers[2]] {
        assert!(eventually(WAIT, || async { stack.locker_status(locker).await == "available" }).await);
    }
}

#[tokio::test]
async fn point_routes_need_the_points_kiosk_token() {
    let app = TestApp::spawn().await;
    let spot = app.spot("Ulsoor", 1).await;
    for response in [
        app.point_pickup_request(spot.point_id, None, RECEIVER_PHONE).await,
        app.point_pickup_collect(spot.point_id, None, "123456").await,
    ] {
        assert_eq!(response.status(), 401);
    }
    for response in [
        app.point_pickup_request(spot.point_id, Some("not-a-kiosk-token"), RECEIVER_PHONE).await,
        app.point_pickup_collect(spot.point_id, Some("not-a-kiosk-token"), "123456").await,
    ] {
        assert_eq!(error_code(response).await, (401, "invalid_kiosk_token".to_owned()));
    }
}

#[tokio::test]
async fn an_item_past_its_pickup_window_expires_and_its_sender_takes_it_back() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Richmond Town", 1).await;
    let sender = stack.sender(Some(SENDER_PHONE)).await;
    let locker = spot.lockers[0];
    let item = stack.stored_item_since(&sender, locker, by_phone(), Duration::minutes(30)).await;
    // The receiver asks in time; the code outlives nothing once the item expires.
    assert_eq!(stack.pickup_request(locker, RECEIVER_PHONE).await.status(), 202);
    let pickup_code = stack.sms_code(RECEIVER_PHONE, 1).await;

    let settings = ExpirySettings::from_config(&stack.config);
    let mut conn = stack.pool.acquire().await.unwrap();
    // Not yet: the window is 72 hours.
    assert_eq!(expire_stored(&mut conn, &Actor::system(), Utc::now(), &settings).await.unwrap(), 0);
    let later = Utc::now() + Duration::hours(73);
    assert_eq!(expire_stored(&mut conn, &Actor::system(), later, &settings).await.unwrap(), 1);
    assert_eq!(expire_stored(&mut conn, &Actor::system(), later, &settings).await.unwrap(), 0, "once");
    assert_eq!(stack.item_status(item).await, "expired");
    let mail = mail_with(&stack, &sender.email, "was not collected").await;
    assert!(mail.contains("return code"), "{mail}");
    sms_with(&stack, SENDER_PHONE, "was not collected").await;

    // The receiver's code is dead and a new request sends them nothing.
    assert_eq!(error_code(stack.pickup_collect(locker, &pickup_code).await).await.0, 401);
    let before = stack.outbox_to(RECEIVER_PHONE).await.len();
    assert_eq!(stack.pickup_request(locker, RECEIVER_PHONE).await.status(), 202);
    assert_eq!(stack.outbox_to(RECEIVER_PHONE).await.len(), before);

    // The sender asks with their account's email and takes it back.
    assert_eq!(stack.pickup_request(locker, &sender.email).await.status(), 202);
    let code = stack.email_code(&sender.email, 2).await;
    let (status, opened) = json(stack.pickup_collect(locker, &code).await).await;
    assert_eq!(status, 200, "{opened}");
    assert!(reaches(&stack, item, "returned").await);
    assert_eq!(stack.bill(item).await, Some((5_000, 1)));
    let mail = mail_with(&stack, &sender.email, "You took back").await;
    assert!(mail.contains("INR 50.00"), "{mail}");
    assert!(eventually(WAIT, || async { stack.locker_status(locker).await == "available" }).await);
}

#[tokio::test]
async fn the_receiver_is_reminded_once_after_the_configured_time_while_the_item_waits() {
    let stack = Stack::spawn(&["--pickup-reminder-after-secs", "7200"]).await;
    let spot = stack.spot("Jayanagar", 4).await;
    let sender = stack.sender(None).await;
    let since = |hours: i64, k: usize, to: Receiver<'static>| {
        stack.stored_item_since(&sender, spot.lockers[k], to, Duration::hours(hours))
    };
    let waiting = since(3, 0, by_email()).await;
    let young = since(1, 1, by_phone()).await;
    let opening = since(3, 2, by_phone()).await;
    let overdue = since(80, 3, by_phone()).await;
    // A code was typed for `opening`: its door is opening, no reminder.
    sqlx::query(
        "UPDATE items SET collect_requested_at = now(), collect_tariff_paise = 5000, collect_currency = 'INR'
         WHERE id = $1",
    )
    .bind(opening)
    .execute(&stack.pool)
    .await
    .unwrap();
    let settings = SweepSettings::from_config(&stack.config);
    let mut conn = stack.pool.acquire().await.unwrap();
    let report = sweep::run(&mut conn, &Actor::system(), Utc::now(), &settings).await.unwrap();
    assert_eq!(report.reminders, 1, "only the item stored 3 h ago and still waiting");
    assert_eq!(report.expired_items, 1, "the one past its pickup window expires instead");
    let again = sweep::run(&mut conn, &Actor::system(), Utc::now(), &settings).await.unwrap();
    assert_eq!(again.reminders, 0, "once");

    let mail = mail_with(&stack, RECEIVER_EMAIL, "still waiting").await;
    assert!(mail.contains("Blue parcel") && mail.contains("Jayanagar") && mail.contains("door 1"), "{mail}");
    let reminded: Vec<(Uuid, bool)> =
        sqlx::query_as("SELECT id, reminded_at IS NOT NULL FROM items WHERE id = ANY($1) ORDER BY id")
            .bind(vec![waiting, young, opening, overdue])
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    let reminded: Vec<Uuid> = reminded.into_iter().filter(|(_, r)| *r).map(|(id, _)| id).collect();
    assert_eq!(reminded, [waiting]);
    let stack = &stack;
    let reminders = |to: &'static str| async move {
        stack.outbox_to(to).await.into_iter().filter(|(kind, _)| kind == "pickup_reminder").count()
    };
    assert_eq!((reminders(RECEIVER_EMAIL).await, reminders(RECEIVER_PHONE).await), (1, 0));

    // Two hours on, the younger item is due too: its receiver gets an SMS.
    let later = sweep::run(&mut conn, &Actor::system(), Utc::now() + Duration::hours(2), &settings).await.unwrap();
    assert_eq!(later.reminders, 1);
    let sms = sms_with(stack, RECEIVER_PHONE, "still waits").await;
    assert!(sms.contains("with this phone number"), "{sms}");
    assert_eq!((reminders(RECEIVER_EMAIL).await, reminders(RECEIVER_PHONE).await), (1, 1));
}

#[tokio::test]
async fn an_expired_item_never_taken_back_is_abandoned_and_billed_to_its_return_deadline() {
    let app = TestApp::spawn().await;
    let (_, _admin) = app.user_with_role("admin").await;
    let spot = app.spot("Yelahanka", 1).await;
    let sender = app.sender(None).await;
    let locker = spot.lockers[0];
    let item = app.stored_item_since(&sender, locker, by_phone(), Duration::hours(2)).await;
    let stored_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT stored_at FROM items WHERE id = $1").bind(item).fetch_one(&app.pool).await.unwrap();

    let settings = ExpirySettings::from_config(&app.config);
    let mut conn = app.pool.acquire().await.unwrap();
    let expired_at = stored_at + Duration::hours(73);
    assert_eq!(expire_stored(&mut conn, &Actor::system(), expired_at, &settings).await.unwrap(), 1);
    let return_by = expired_at + Duration::seconds(settings.return_window.as_secs() as i64);
    assert_eq!(
        abandon_expired(&mut conn, &Actor::system(), return_by - Duration::seconds(1), &settings).await.unwrap(),
        0
    );
    // The sweep fires it (the scheduled sweep and `lockers-admin sweep run` alike).
    let sweep_settings = lockers_core::sweep::SweepSettings::from_config(&app.config);
    let report = lockers_core::sweep::run(&mut conn, &Actor::system(), return_by, &sweep_settings).await.unwrap();
    assert_eq!((report.expired_items, report.abandoned_items), (0, 1));
    assert_eq!(abandon_expired(&mut conn, &Actor::system(), return_by, &settings).await.unwrap(), 0, "once");

    // Billing stopped at the deadline: 73 h + 7 days = 241 started hours.
    assert_eq!(app.bill(item).await, Some((241 * 5_000, 241)));
    assert_eq!(app.item_status(item).await, "expired");
    assert_eq!(app.locker_status(locker).await, "occupied", "staff force-clear it");
    assert_eq!(audit_count(&app, "alert.item_abandoned").await, 1);
    let to_sender: Vec<String> = app.outbox_to(&sender.email).await.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(to_sender, ["item_expired", "item_abandoned"]);
    // No return code any more.
    assert_eq!(app.pickup_request(locker, &sender.email).await.status(), 202);
    assert_eq!(app.outbox_to(&sender.email).await.len(), 2);
}

#[tokio::test]
async fn a_pickup_open_that_fails_for_good_leaves_the_item_stored_flagged_and_billing_stopped() {
    // No workers: the door command waits until the test fails it.
    let app = TestApp::spawn().await;
    let (_, _admin) = app.user_with_role("admin").await;
    let spot = app.spot("Banashankari", 1).await;
    let sender = app.sender(None).await;
    let locker = spot.lockers[0];
    let item = app.stored_item_since(&sender, locker, by_email(), Duration::minutes(90)).await;

    assert_eq!(app.pickup_request(locker, RECEIVER_EMAIL).await.status(), 202);
    let (_, body) = app.outbox_to(RECEIVER_EMAIL).await.pop().unwrap();
    let code = body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_owned();
    let (status, opened) = json(app.pickup_collect(locker, &code).await).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["status"], "stored");
    let command_id: Uuid = opened["command_id"].as_str().unwrap().parse().unwrap();
    // While the door is opening, no second code is sent.
    assert_eq!(app.pickup_request(locker, RECEIVER_EMAIL).await.status(), 202);
    assert_eq!(app.outbox_to(RECEIVER_EMAIL).await.len(), 1);

    let mut conn = app.pool.acquire().await.unwrap();
    lockers_core::exchange::doors::failed(&mut conn, &Actor::system(), command_id, "test: jammed").await.unwrap();

    assert_eq!(app.item_status(item).await, "stored");
    let (flagged, requested_at, stored_at): (
        Option<chrono::DateTime<Utc>>,
        chrono::DateTime<Utc>,
        chrono::DateTime<Utc>,
    ) = sqlx::query_as("SELECT pickup_failed_at, collect_requested_at, stored_at FROM items WHERE id = $1")
        .bind(item)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(flagged.is_some());
    // Billing stopped at the collect: 90 minutes (and the seconds since) are two started hours.
    let hours = ((requested_at - stored_at).num_milliseconds() + 3_599_999) / 3_600_000;
    assert_eq!(hours, 2);
    assert_eq!(app.bill(item).await, Some((10_000, 2)));
    assert_eq!(app.locker_status(locker).await, "maintenance");
    assert_eq!(audit_count(&app, "alert.pickup_open_failed").await, 1);
    let kinds: Vec<String> = app.outbox_to(RECEIVER_EMAIL).await.into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(kinds, ["pickup_codes", "pickup_failed"]);
    // The failure is final: a late acknowledgement changes nothing.
    lockers_core::exchange::doors::acknowledged(&mut conn, &Actor::system(), command_id).await.unwrap();
    assert_eq!(app.item_status(item).await, "stored");
}

#[tokio::test]
async fn a_right_code_for_an_item_no_longer_waiting_is_spent_and_refused() {
    let app = TestApp::spawn().await;
    let spot = app.spot("Sadashivanagar", 1).await;
    let sender = app.sender(None).await;
    let locker = spot.lockers[0];
    let item = app.stored_item_since(&sender, locker, by_email(), Duration::minutes(5)).await;
    assert_eq!(app.pickup_request(locker, RECEIVER_EMAIL).await.status(), 202);
    let (_, body) = app.outbox_to(RECEIVER_EMAIL).await.pop().unwrap();
    let code = body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_owned();
    // Staff emptied the locker meanwhile (the force-clear's end state).
    sqlx::query("UPDATE items SET status = 'force_removed', closed_at = now() WHERE id = $1")
        .bind(item)
        .execute(&app.pool)
        .await
        .unwrap();

    assert_eq!(error_code(app.pickup_collect(locker, &code).await).await, (409, "item_unavailable".to_owned()));
    assert_eq!(error_code(app.pickup_collect(locker, &code).await).await.0, 401, "the code is spent");
    assert!(door_commands(&app, item).await.is_empty());
}

#[tokio::test]
async fn the_sender_of_an_expired_item_gets_a_return_code_at_the_points_screen_by_phone() {
    let stack = Stack::spawn(&[]).await;
    let spot = stack.spot("Frazer Town", 2).await;
    let sender = stack.sender(Some(SENDER_PHONE)).await;
    let locker = spot.lockers[1];
    let item = stack.stored_item_since(&sender, locker, by_email(), Duration::minutes(10)).await;
    let kiosk = stack.kiosk_token(spot.point_id).await;
    let settings = ExpirySettings::from_config(&stack.config);
    let mut conn = stack.pool.acquire().await.unwrap();
    expire_stored(&mut conn, &Actor::system(), Utc::now() + Duration::hours(73), &settings).await.unwrap();

    assert_eq!(stack.point_pickup_request(spot.point_id, Some(&kiosk), SENDER_PHONE).await.status(), 202);
    let text = sms_with(&stack, SENDER_PHONE, "to take back").await;
    assert!(text.contains("from door 2"), "{text}");
    let code = text.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).unwrap().to_owned();
    let (status, opened) = json(stack.point_pickup_collect(spot.point_id, Some(&kiosk), &code).await).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!((opened["door_no"].as_i64(), opened["status"].as_str()), (Some(2), Some("expired")));
    assert!(reaches(&stack, item, "returned").await);
    assert_eq!(door_commands(&stack, item).await, [("return".to_owned(), "acked".to_owned())]);
}
