//! The deposit side of the exchange through real HTTP: reserve (atomic under
//! races, by locker or by size at a point), drop-off from the app or by code
//! at the point's screen, the door (simulated driver, or acknowledged and
//! reported by hand through the controller route), storing and notifying,
//! cancel, reservation expiry, doors left open, force-clear.

use std::time::Duration;

use chrono::Utc;
use lockers_core::audit::Actor;
use lockers_core::exchange::{deposit, doors};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::exchange::{id, json_of, site};
use crate::harness::{Stack, TestApp, eventually};

const RECEIVER_PHONE: &str = "+919876543210";
const RECEIVER_EMAIL: &str = "asha@example.com";

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn to_locker(locker: &str) -> Value {
    json!({ "locker_id": locker, "name": "Books", "receiver_phone": RECEIVER_PHONE, "receiver_email": RECEIVER_EMAIL })
}

async fn item_status(app: &TestApp, item: &str) -> String {
    sqlx::query_scalar("SELECT status FROM items WHERE id = $1::uuid").bind(item).fetch_one(&app.pool).await.unwrap()
}

async fn locker_status(app: &TestApp, locker: &str) -> String {
    sqlx::query_scalar("SELECT status FROM lockers WHERE id = $1::uuid")
        .bind(locker)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn door_commands(app: &TestApp, item: &str) -> Vec<(Uuid, String, Option<chrono::DateTime<Utc>>)> {
    sqlx::query_as("SELECT id, status, closed_at FROM door_commands WHERE item_id = $1::uuid ORDER BY created_at")
        .bind(item)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn queued(app: &TestApp, kind: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT recipient, body FROM notifications WHERE kind = $1 ORDER BY created_at")
        .bind(kind)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn wait_for_status(app: &TestApp, item: &str, status: &str) {
    let reached = eventually(Duration::from_secs(10), || async { item_status(app, item).await == status }).await;
    assert!(reached, "item {item} never became {status} (is {})", item_status(app, item).await);
}

async fn sender_email(app: &TestApp, user: Uuid) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1").bind(user).fetch_one(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_deposit_opens_no_door_until_the_drop_off_then_the_closed_door_stores_it_and_tells_both() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (sender, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M", "M"]).await;

    let item = json_of(stack.deposit(&token, &to_locker(&site.lockers[1])).await, 201).await;
    let item_id = id(&item);
    assert_eq!(item["status"], "reserved");
    assert_eq!(item["locker"]["door_no"], 2);
    assert_eq!(item["point"]["id"], site.point.as_str());
    assert_eq!(item["receiver_phone"], "+91******3210", "{item}");
    assert_eq!(item["receiver_email"], "a***@example.com");
    assert_eq!(item["dropoff_code"].as_str().unwrap().len(), 6);
    assert_eq!(locker_status(&stack, &site.lockers[1]).await, "reserved");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(door_commands(&stack, &item_id).await.is_empty(), "no door opens at reservation");

    let opened = json_of(stack.drop_off(&token, &item_id).await, 200).await;
    assert_eq!(opened, json!({ "item_id": item_id, "door_no": 2 }));
    wait_for_status(&stack, &item_id, "stored").await;

    let commands = door_commands(&stack, &item_id).await;
    assert_eq!(commands.len(), 1, "one deposit open");
    assert_eq!(commands[0].1, "acked");
    assert!(commands[0].2.is_some(), "reported closed");
    assert_eq!(locker_status(&stack, &site.lockers[1]).await, "occupied");
    let view = json_of(stack.item(&token, &item_id).await, 200).await;
    assert_eq!(view["status"], "stored");
    assert!(view["stored_at"].is_string() && view["pickup_by"].is_string(), "{view}");

    // The receiver by SMS and by email, the sender by email: where and how.
    let sms = eventually(Duration::from_secs(10), || async { stack.sent_to(RECEIVER_PHONE) == 1 }).await;
    assert!(sms, "receiver SMS");
    let text = stack.twilio.messages().into_iter().find(|m| m.to == RECEIVER_PHONE).unwrap().body;
    assert!(text.contains("door 2") && text.contains("80 Feet Road") && text.contains("this phone number"), "{text}");
    assert!(eventually(Duration::from_secs(10), || async { stack.smtp.mails_to(RECEIVER_EMAIL).len() == 1 }).await);
    assert!(stack.smtp.mails_to(RECEIVER_EMAIL)[0].decoded().contains("this email address"));
    let sender = sender_email(&stack, sender).await;
    assert!(eventually(Duration::from_secs(10), || async { stack.smtp.mails_to(&sender).len() == 1 }).await);
    let told = stack.smtp.mails_to(&sender)[0].decoded();
    assert!(told.contains("is stored") && told.contains("+91******3210"), "{told}");
    assert!(!told.contains(RECEIVER_PHONE), "the sender's mail masks the receiver");

    // A second drop-off of a stored item opens nothing.
    assert_eq!(error_of(stack.drop_off(&token, &item_id).await).await, (409, "item_not_reserved".into()));
    assert_eq!(door_commands(&stack, &item_id).await.len(), 1);
}

#[tokio::test]
async fn an_email_only_receiver_is_told_by_email_after_a_drop_off_by_code_at_the_point() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (_, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["S"]).await;
    let kiosk = json_of(stack.enrol_kiosk(&admin, &site.point).await, 200).await;
    let kiosk = kiosk["kiosk_token"].as_str().unwrap().to_owned();

    let body = json!({ "locker_id": site.lockers[0], "name": "Keys", "receiver_email": "Ravi@Example.com" });
    let item = json_of(stack.deposit(&token, &body).await, 201).await;
    assert!(item["receiver_phone"].is_null());
    let code = item["dropoff_code"].as_str().unwrap();
    let opened = json_of(stack.drop_off_at_point(Some(&kiosk), &site.point, code).await, 200).await;
    assert_eq!(opened, json!({ "item_id": id(&item), "door_no": 1 }));
    wait_for_status(&stack, &id(&item), "stored").await;

    assert!(eventually(Duration::from_secs(10), || async { stack.smtp.mails_to("ravi@example.com").len() == 1 }).await);
    let mail = stack.smtp.mails_to("ravi@example.com")[0].decoded();
    assert!(mail.contains("door 1") && mail.contains("Keys"), "{mail}");
    assert!(stack.twilio.messages().is_empty(), "no phone, no SMS");
}

#[tokio::test]
async fn of_64_concurrent_deposits_for_one_locker_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let site = site(&app, &admin, &["M"]).await;
    let mut senders = Vec::new();
    for _ in 0..64 {
        senders.push(app.user_with_role("user").await.1);
    }
    let body = to_locker(&site.lockers[0]);
    let answers = futures::future::join_all(
        senders.iter().map(|token| async { error_of(app.deposit(token, &body).await).await }),
    )
    .await;
    let won = answers.iter().filter(|(status, _)| *status == 201).count();
    let lost = answers.iter().filter(|a| **a == (409, "locker_unavailable".to_owned())).count();
    assert_eq!((won, lost), (1, 63), "{answers:?}");
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items").fetch_one(&app.pool).await.unwrap();
    assert_eq!(items, 1);
}

#[tokio::test]
async fn a_size_at_a_point_takes_a_free_locker_of_it_or_a_larger_one_when_allowed() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["S", "M", "XL"]).await;
    let at_point = |size: &str, larger: Option<bool>| {
        let mut body = json!({ "point_id": site.point, "size": size, "name": "Box", "receiver_phone": RECEIVER_PHONE });
        if let Some(larger) = larger {
            body["allow_larger"] = json!(larger);
        }
        body
    };

    let first = json_of(app.deposit(&token, &at_point("M", None)).await, 201).await;
    assert_eq!(first["locker"]["door_no"], 2);
    assert_eq!(
        error_of(app.deposit(&token, &at_point("M", Some(false))).await).await,
        (409, "no_locker_available".into())
    );
    let larger = json_of(app.deposit(&token, &at_point("M", Some(true))).await, 201).await;
    assert_eq!(larger["locker"]["door_no"], 3, "the next larger free size (XL), never the smaller S");
    assert_eq!(
        error_of(app.deposit(&token, &at_point("L", Some(true))).await).await,
        (409, "no_locker_available".into())
    );

    // Bad input: no place, both places, no receiver, a bad phone; an unknown point.
    let no_place = json!({ "name": "Box", "receiver_phone": RECEIVER_PHONE });
    assert_eq!(error_of(app.deposit(&token, &no_place).await).await, (422, "place_required".into()));
    let mut both = at_point("S", None);
    both["locker_id"] = json!(site.lockers[0]);
    assert_eq!(error_of(app.deposit(&token, &both).await).await, (422, "place_required".into()));
    let nobody = json!({ "locker_id": site.lockers[0], "name": "Box" });
    assert_eq!(error_of(app.deposit(&token, &nobody).await).await, (422, "receiver_required".into()));
    let bad_phone = json!({ "locker_id": site.lockers[0], "name": "Box", "receiver_phone": "98765" });
    assert_eq!(error_of(app.deposit(&token, &bad_phone).await).await, (422, "invalid_phone".into()));
    let mut nowhere = at_point("S", None);
    nowhere["point_id"] = json!(Uuid::now_v7());
    assert_eq!(error_of(app.deposit(&token, &nowhere).await).await, (422, "point_not_found".into()));
    assert_eq!(locker_status(&app, &site.lockers[0]).await, "available", "refusals reserve nothing");
}

#[tokio::test]
async fn only_verified_senders_deposit_and_each_holds_a_bounded_number_of_reservations() {
    let app = TestApp::spawn_with(&["--max-open-reservations", "2"]).await;
    let (_, admin) = app.user_with_role("admin").await;
    let (unverified, token) = app.user_with_role("user").await;
    sqlx::query("UPDATE users SET email_verified_at = NULL WHERE id = $1")
        .bind(unverified)
        .execute(&app.pool)
        .await
        .unwrap();
    let site = site(&app, &admin, &["S", "S", "S"]).await;
    assert_eq!(
        error_of(app.deposit(&token, &to_locker(&site.lockers[0])).await).await,
        (403, "email_not_verified".into())
    );
    let anonymous = app.http.post(app.url("/api/v1/items")).json(&to_locker(&site.lockers[0])).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let (_, token) = app.user_with_role("user").await;
    json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    json_of(app.deposit(&token, &to_locker(&site.lockers[1])).await, 201).await;
    assert_eq!(
        error_of(app.deposit(&token, &to_locker(&site.lockers[2])).await).await,
        (409, "too_many_reservations".into())
    );
    let (_, other) = app.user_with_role("user").await;
    json_of(app.deposit(&other, &to_locker(&site.lockers[2])).await, 201).await;
}

#[tokio::test]
async fn a_drop_off_code_works_once_at_its_own_point_with_its_screen_until_the_deadline() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M", "M"]).await;
    let elsewhere = self::site(&app, &admin, &["M"]).await;
    let kiosk =
        json_of(app.enrol_kiosk(&admin, &site.point).await, 200).await["kiosk_token"].as_str().unwrap().to_owned();
    let other_kiosk =
        json_of(app.enrol_kiosk(&admin, &elsewhere.point).await, 200).await["kiosk_token"].as_str().unwrap().to_owned();

    let item = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    let code = item["dropoff_code"].as_str().unwrap().to_owned();
    let wrong = if code == "000000" { "000001" } else { "000000" };

    assert_eq!(error_of(app.drop_off_at_point(None, &site.point, &code).await).await, (401, "unauthorized".into()));
    assert_eq!(
        error_of(app.drop_off_at_point(Some("not-a-kiosk"), &site.point, &code).await).await,
        (401, "invalid_kiosk_token".into())
    );
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&other_kiosk), &site.point, &code).await).await,
        (403, "wrong_point".into())
    );
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&other_kiosk), &elsewhere.point, &code).await).await,
        (422, "invalid_code".into()),
        "a code is its own point's"
    );
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&kiosk), &site.point, wrong).await).await,
        (422, "invalid_code".into())
    );
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&kiosk), &site.point, "12ab").await).await,
        (422, "invalid_code".into())
    );
    assert!(door_commands(&app, &id(&item)).await.is_empty(), "wrong codes open nothing");

    let opened = json_of(app.drop_off_at_point(Some(&kiosk), &site.point, &code).await, 200).await;
    assert_eq!(opened["door_no"], 1);
    assert_eq!(door_commands(&app, &id(&item)).await.len(), 1, "one deposit command");
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&kiosk), &site.point, &code).await).await,
        (422, "invalid_code".into())
    );
    // The sender's app asking again while the door is on its way: same door, no second command.
    assert_eq!(json_of(app.drop_off(&token, &id(&item)).await, 200).await["door_no"], 1);
    assert_eq!(door_commands(&app, &id(&item)).await.len(), 1);

    // A late code, and a late drop-off from the app, are refused.
    let late = json_of(app.deposit(&token, &to_locker(&site.lockers[1])).await, 201).await;
    sqlx::query("UPDATE items SET dropoff_by = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(id(&late))
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE one_time_codes SET expires_at = now() - interval '1 second' WHERE item_id = $1::uuid")
        .bind(id(&late))
        .execute(&app.pool)
        .await
        .unwrap();
    let late_code = late["dropoff_code"].as_str().unwrap();
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&kiosk), &site.point, late_code).await).await,
        (422, "invalid_code".into())
    );
    assert_eq!(error_of(app.drop_off(&token, &id(&late)).await).await, (409, "dropoff_deadline_passed".into()));
    assert!(door_commands(&app, &id(&late)).await.is_empty());
}

#[tokio::test]
async fn wrong_drop_off_codes_are_limited_per_address_at_a_point() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let site = site(&app, &admin, &["M"]).await;
    let kiosk =
        json_of(app.enrol_kiosk(&admin, &site.point).await, 200).await["kiosk_token"].as_str().unwrap().to_owned();
    let mut answers = Vec::new();
    for n in 0..11 {
        answers.push(error_of(app.drop_off_at_point(Some(&kiosk), &site.point, &format!("{n:06}")).await).await.0);
    }
    assert_eq!(answers[..10], [422; 10]);
    assert_eq!(answers[10], 429, "{answers:?}");
}

#[tokio::test]
async fn the_sender_cancels_a_reservation_before_the_door_is_asked_to_open() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let (_, stranger) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M", "M"]).await;
    let kiosk =
        json_of(app.enrol_kiosk(&admin, &site.point).await, 200).await["kiosk_token"].as_str().unwrap().to_owned();

    let item = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    assert_eq!(error_of(app.cancel_item(&stranger, &id(&item)).await).await, (404, "not_found".into()));
    assert_eq!(error_of(app.item(&stranger, &id(&item)).await).await, (404, "not_found".into()));
    let cancelled = json_of(app.cancel_item(&token, &id(&item)).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["closed_at"].is_string());
    assert_eq!(locker_status(&app, &site.lockers[0]).await, "available");
    let code = item["dropoff_code"].as_str().unwrap();
    assert_eq!(
        error_of(app.drop_off_at_point(Some(&kiosk), &site.point, code).await).await,
        (422, "invalid_code".into())
    );
    assert_eq!(error_of(app.cancel_item(&token, &id(&item)).await).await, (409, "item_not_reserved".into()));
    // The locker can be reserved again at once.
    json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;

    // Once the door was asked to open (no workers here: the command waits), no cancel.
    let started = json_of(app.deposit(&token, &to_locker(&site.lockers[1])).await, 201).await;
    json_of(app.drop_off(&token, &id(&started)).await, 200).await;
    assert_eq!(error_of(app.cancel_item(&token, &id(&started)).await).await, (409, "dropoff_started".into()));
}

#[tokio::test]
async fn reservations_expire_after_the_drop_off_deadline_unless_the_door_was_asked_to_open() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (sender, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M", "M"]).await;
    let idle = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    let dropping = json_of(app.deposit(&token, &to_locker(&site.lockers[1])).await, 201).await;
    json_of(app.drop_off(&token, &id(&dropping)).await, 200).await;

    let mut conn = app.pool.acquire().await.unwrap();
    let before_deadline = Utc::now() + chrono::Duration::minutes(14);
    assert_eq!(deposit::expire_reservations(&mut conn, &Actor::system(), before_deadline).await.unwrap(), 0);
    assert_eq!(item_status(&app, &id(&idle)).await, "reserved");

    let after_deadline = Utc::now() + chrono::Duration::minutes(16);
    assert_eq!(deposit::expire_reservations(&mut conn, &Actor::system(), after_deadline).await.unwrap(), 1);
    assert_eq!(item_status(&app, &id(&idle)).await, "cancelled");
    assert_eq!(locker_status(&app, &site.lockers[0]).await, "available");
    assert_eq!(item_status(&app, &id(&dropping)).await, "reserved", "the door's reservation stays");
    assert_eq!(locker_status(&app, &site.lockers[1]).await, "reserved");
    let told = queued(&app, "reservation_expired").await;
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].0, sender_email(&app, sender).await);
    // Running again finds nothing more.
    assert_eq!(deposit::expire_reservations(&mut conn, &Actor::system(), after_deadline).await.unwrap(), 0);
}

#[tokio::test]
async fn a_drop_off_door_left_open_alerts_admins_and_takes_the_locker_out_of_service_until_closed() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M"]).await;
    let item = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    json_of(app.drop_off(&token, &id(&item)).await, 200).await;
    let (command, _, _) = door_commands(&app, &id(&item)).await[0];

    // The controller acknowledges the open (as the door worker records it) and reports the door open.
    let mut conn = app.pool.acquire().await.unwrap();
    doors::acknowledged(&mut conn, &Actor::system(), command).await.unwrap();
    let opened = json!({ "door_no": 1, "event": "door_opened", "command_id": command });
    assert_eq!(app.controller_event(&site.controller_token, &opened).await.status(), 204);

    // Past the deadline the reservation stays: the door was opened for it.
    let later = Utc::now() + chrono::Duration::minutes(30);
    assert_eq!(deposit::expire_reservations(&mut conn, &Actor::system(), later).await.unwrap(), 0);
    let timeout = Duration::from_secs(120);
    let soon = Utc::now() + chrono::Duration::seconds(60);
    assert_eq!(deposit::doors_left_open(&mut conn, &Actor::system(), soon, timeout).await.unwrap(), 0);
    let late = Utc::now() + chrono::Duration::seconds(180);
    assert_eq!(deposit::doors_left_open(&mut conn, &Actor::system(), late, timeout).await.unwrap(), 1);
    assert_eq!(deposit::doors_left_open(&mut conn, &Actor::system(), late, timeout).await.unwrap(), 0, "alerted once");

    assert_eq!(locker_status(&app, &site.lockers[0]).await, "maintenance");
    assert_eq!(item_status(&app, &id(&item)).await, "reserved");
    let alerts = queued(&app, "admin_alert").await;
    assert_eq!(alerts.len(), 1, "one admin, one alert");
    assert!(alerts[0].1.contains("not reported closed"), "{}", alerts[0].1);
    assert_eq!(queued(&app, "door_left_open").await.len(), 1, "the sender is asked to close it");
    let audit = json_of(app.audit_log(&admin, "action=alert.door_left_open").await, 200).await;
    assert_eq!(audit["total"], 1, "{audit}");
    // Not back in service while the item may be inside.
    let patch = app.update_locker(&admin, &site.lockers[0], &json!({ "status": "available" })).await;
    assert_eq!(error_of(patch).await, (409, "locker_not_empty".into()));

    // Closed at last: the item is stored and the locker occupied.
    let closed = json!({ "door_no": 1, "event": "door_closed", "command_id": command });
    assert_eq!(app.controller_event(&site.controller_token, &closed).await.status(), 204);
    assert_eq!(item_status(&app, &id(&item)).await, "stored");
    assert_eq!(locker_status(&app, &site.lockers[0]).await, "occupied");
}

#[tokio::test]
async fn controller_events_are_authenticated_per_point_and_replays_are_harmless() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M"]).await;
    let other = self::site(&app, &admin, &["M"]).await;
    let item = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    json_of(app.drop_off(&token, &id(&item)).await, 200).await;
    let (command, _, _) = door_commands(&app, &id(&item)).await[0];
    let mut conn = app.pool.acquire().await.unwrap();
    doors::acknowledged(&mut conn, &Actor::system(), command).await.unwrap();
    let closed = json!({ "door_no": 1, "event": "door_closed", "command_id": command });

    assert_eq!(error_of(app.controller_event("wrong", &closed).await).await, (401, "invalid_controller_token".into()));
    let unknown_door = json!({ "door_no": 9, "event": "door_closed", "command_id": null });
    assert_eq!(error_of(app.controller_event(&site.controller_token, &unknown_door).await).await.0, 404);
    // Another point's controller, naming this point's command on its own door 1.
    assert_eq!(
        error_of(app.controller_event(&other.controller_token, &closed).await).await,
        (403, "foreign_command".into())
    );
    assert_eq!(item_status(&app, &id(&item)).await, "reserved");

    assert_eq!(app.controller_event(&site.controller_token, &closed).await.status(), 204);
    assert_eq!(item_status(&app, &id(&item)).await, "stored");
    let stored_at: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT stored_at FROM items WHERE id = $1::uuid")
            .bind(id(&item))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let told = queued(&app, "item_stored_receiver").await.len();
    assert_eq!(told, 2, "SMS and email");
    for _ in 0..2 {
        assert_eq!(app.controller_event(&site.controller_token, &closed).await.status(), 204);
    }
    let null_command = json!({ "door_no": 1, "event": "door_closed", "command_id": null });
    assert_eq!(app.controller_event(&site.controller_token, &null_command).await.status(), 204);
    assert_eq!(queued(&app, "item_stored_receiver").await.len(), told, "a replay tells no one again");
    let again: Option<chrono::DateTime<Utc>> = sqlx::query_scalar("SELECT stored_at FROM items WHERE id = $1::uuid")
        .bind(id(&item))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(again, stored_at);
}

/// A report without a command id never acknowledges an open just issued (a
/// stray `door_closed` must not store an item whose door never opened); one
/// naming the command does, since it can beat the controller's answer.
#[tokio::test]
async fn only_a_door_report_naming_its_command_acknowledges_an_open_in_flight() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M"]).await;
    let item = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    json_of(app.drop_off(&token, &id(&item)).await, 200).await;
    let (command, _, _) = door_commands(&app, &id(&item)).await[0];

    let stray = json!({ "door_no": 1, "event": "door_closed", "command_id": null });
    assert_eq!(app.controller_event(&site.controller_token, &stray).await.status(), 204);
    assert_eq!(item_status(&app, &id(&item)).await, "reserved", "a stray report stores nothing");
    let status: String = sqlx::query_scalar("SELECT status FROM door_commands WHERE id = $1")
        .bind(command)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "pending", "nor acknowledges the open");

    let named = json!({ "door_no": 1, "event": "door_closed", "command_id": command });
    assert_eq!(app.controller_event(&site.controller_token, &named).await.status(), 204);
    assert_eq!(item_status(&app, &id(&item)).await, "stored", "a report naming the open proves it");
}

#[tokio::test]
async fn a_failed_deposit_open_cancels_the_reservation_and_takes_the_locker_out_of_service() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M"]).await;
    let item = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    json_of(app.drop_off(&token, &id(&item)).await, 200).await;
    let (command, _, _) = door_commands(&app, &id(&item)).await[0];
    let mut conn = app.pool.acquire().await.unwrap();
    doors::failed(&mut conn, &Actor::system(), command, "409 jammed").await.unwrap();

    assert_eq!(item_status(&app, &id(&item)).await, "cancelled");
    assert_eq!(locker_status(&app, &site.lockers[0]).await, "maintenance");
    assert_eq!(queued(&app, "admin_alert").await.len(), 1);
    assert_eq!(queued(&app, "dropoff_failed").await.len(), 1, "the sender is told");
}

#[tokio::test]
async fn force_clear_removes_the_item_closes_its_bill_tells_the_sender_and_frees_the_locker() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (sender, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M", "M"]).await;
    let item = json_of(stack.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    let item_id = id(&item);
    json_of(stack.drop_off(&token, &item_id).await, 200).await;
    wait_for_status(&stack, &item_id, "stored").await;
    // Occupied lockers stay in service; maintenance is refused while in use.
    let patch = stack.update_locker(&admin, &site.lockers[0], &json!({ "status": "maintenance" })).await;
    assert_eq!(error_of(patch).await, (409, "locker_in_use".into()));

    assert_eq!(error_of(stack.force_clear(&token, &site.lockers[0], "jammed").await).await.0, 403);
    assert_eq!(error_of(stack.force_clear(&admin, &site.lockers[0], "  ").await).await, (422, "invalid_reason".into()));
    let accepted = json_of(stack.force_clear(&admin, &site.lockers[0], "parcel leaking").await, 202).await;
    assert_eq!(accepted["item_id"], item_id.as_str());
    wait_for_status(&stack, &item_id, "force_removed").await;
    let freed =
        eventually(Duration::from_secs(10), || async { locker_status(&stack, &site.lockers[0]).await == "available" })
            .await;
    assert!(freed, "available once the door is reported closed");

    let bill: (i64, String, i32) =
        sqlx::query_as("SELECT amount_paise, currency::text, hours FROM transactions WHERE item_id = $1::uuid")
            .bind(&item_id)
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(bill, (5000, "INR".to_owned(), 1), "one started hour");
    let view = json_of(stack.item(&admin, &item_id).await, 200).await;
    assert_eq!(view["amount"], json!({ "minor": 5000, "currency": "INR" }), "{view}");
    let audit = json_of(stack.audit_log(&admin, "action=item.force_remove").await, 200).await;
    assert_eq!(audit["total"], 1, "{audit}");
    assert!(audit.to_string().contains("parcel leaking"), "{audit}");
    let sender = sender_email(&stack, sender).await;
    let mailed = eventually(Duration::from_secs(10), || async {
        stack.smtp.mails_to(&sender).iter().any(|m| m.decoded().contains("removed your parcel"))
    })
    .await;
    assert!(mailed, "the sender is told");
    let removed = stack.smtp.mails_to(&sender).into_iter().find(|m| m.decoded().contains("removed")).unwrap();
    assert!(removed.decoded().contains("INR 50.00"));

    // An empty locker just opens; the next deposit can have it.
    let empty = json_of(stack.force_clear(&admin, &site.lockers[1], "inspection").await, 202).await;
    assert!(empty["item_id"].is_null());
    json_of(stack.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
}

#[tokio::test]
async fn senders_list_their_own_items_newest_first_and_admins_list_anyones() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (asha, token) = app.user_with_role("user").await;
    let (_, other) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["S", "S", "S"]).await;
    let first = json_of(app.deposit(&token, &to_locker(&site.lockers[0])).await, 201).await;
    let second = json_of(app.deposit(&token, &to_locker(&site.lockers[1])).await, 201).await;
    json_of(app.deposit(&other, &to_locker(&site.lockers[2])).await, 201).await;

    let mine = json_of(app.items(&token, "").await, 200).await;
    assert_eq!(mine["total"], 2);
    assert_eq!(mine["items"][0]["id"], second["id"]);
    assert_eq!(mine["items"][1]["id"], first["id"]);
    assert!(mine["items"][0]["dropoff_code"].is_null(), "the code is shown once, at deposit");
    assert_eq!(mine["items"][0]["receiver_phone"], "+91******3210");
    let paged = json_of(app.items(&token, "per_page=1&page=2").await, 200).await;
    assert_eq!((paged["total"].clone(), paged["items"][0]["id"].clone()), (json!(2), first["id"].clone()));
    assert_eq!(error_of(app.items(&other, &format!("sender_id={asha}")).await).await.0, 403);

    let all = json_of(app.items(&admin, "").await, 200).await;
    assert_eq!(all["total"], 3);
    let hers = json_of(app.items(&admin, &format!("sender_id={asha}")).await, 200).await;
    assert_eq!(hers["total"], 2);
    assert_eq!(json_of(app.item(&admin, &id(&first)).await, 200).await["status"], "reserved");
}

#[tokio::test]
async fn only_lockers_of_online_points_are_reserved_and_a_heartbeat_brings_a_point_online() {
    // Real controllers: a point is online while its last heartbeat is under a minute old.
    let app = TestApp::spawn_with(&["--door-driver", "http"]).await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M"]).await;
    let by_size = json!({ "point_id": site.point, "size": "M", "name": "Box", "receiver_phone": RECEIVER_PHONE });
    assert_eq!(error_of(app.deposit(&token, &to_locker(&site.lockers[0])).await).await, (409, "point_offline".into()));
    assert_eq!(error_of(app.deposit(&token, &by_size).await).await, (409, "point_offline".into()));
    assert_eq!(locker_status(&app, &site.lockers[0]).await, "available");

    let heartbeat = json!({ "event": "heartbeat" });
    assert_eq!(app.controller_event(&site.controller_token, &heartbeat).await.status(), 204);
    json_of(app.deposit(&token, &by_size).await, 201).await;
}
