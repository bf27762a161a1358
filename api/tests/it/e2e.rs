//! The whole exchange end to end, as issue 10's "Done when" lists it: real
//! HTTP, real workers (`Stack`: app + workers + fake SMTP and Twilio), and a
//! controller over HTTP where the doors matter (the tests' fake controller,
//! or the shipped `lockers-admin simulate-controller`): deposit -> drop-off
//! -> door -> stored -> code -> collect -> door -> collected -> the amount in
//! the sender's mail and the ledger. Also force-clear (during a collect and
//! of a stored item), a controller failing half the time, per-size prices,
//! and the sweep that fails door commands left in flight.

use std::time::Duration;

use chrono::Utc;
use lockers_api::simulator::Faults;
use lockers_core::audit::Actor;
use lockers_core::exchange::doors;
use lockers_core::sweep::{self, SweepSettings};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::exchange::{Site, id, json_of, site};
use crate::fakes::controller::{FakeController, simulator_url};
use crate::harness::{Stack, TestApp, eventually};

/// The `http` door driver with quick retries (door attempts keep their 5 s timeout).
pub(crate) const HTTP_DOORS: [&str; 3] = ["--door-driver=http", "--job-backoff-base-ms=50", "--job-backoff-max-secs=1"];

/// Long enough for any step of an exchange on a busy 2-core machine.
pub(crate) const WITHIN: Duration = Duration::from_secs(15);

/// Points the site's doors at `url` (an admin's PATCH, as an operator would).
pub(crate) async fn wire(app: &TestApp, admin: &str, site: &Site, url: &str) {
    json_of(app.update_point(admin, &site.point, &json!({ "controller_url": url })).await, 200).await;
}

/// A fake controller for the site, reporting events back to the app, with
/// one heartbeat sent (the `http` driver offers only online points).
async fn controller(stack: &Stack, admin: &str, site: &Site) -> FakeController {
    let fake = FakeController::start(&site.controller_token, Some(&stack.url(""))).await;
    wire(stack, admin, site, &fake.url).await;
    let beat = fake.report("heartbeat", None, None).await.unwrap();
    assert_eq!(beat.as_u16(), 204);
    fake
}

pub(crate) async fn item_status(app: &TestApp, item: &str) -> String {
    sqlx::query_scalar("SELECT status FROM items WHERE id = $1::uuid").bind(item).fetch_one(&app.pool).await.unwrap()
}

pub(crate) async fn locker_status(app: &TestApp, locker: &str) -> String {
    sqlx::query_scalar("SELECT status FROM lockers WHERE id = $1::uuid")
        .bind(locker)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

pub(crate) async fn reaches(app: &TestApp, item: &str, status: &str) {
    let reached = eventually(WITHIN, || async { item_status(app, item).await == status }).await;
    assert!(reached, "item {item} never became {status} (is {})", item_status(app, item).await);
}

pub(crate) async fn locker_reaches(app: &TestApp, locker: &str, status: &str) {
    let reached = eventually(WITHIN, || async { locker_status(app, locker).await == status }).await;
    assert!(reached, "locker {locker} never became {status} (is {})", locker_status(app, locker).await);
}

/// The item's door commands, oldest first: (id, reason, status, reported closed).
async fn commands(app: &TestApp, item: &str) -> Vec<(Uuid, String, String, bool)> {
    sqlx::query_as(
        "SELECT id, reason, status, closed_at IS NOT NULL FROM door_commands
         WHERE item_id = $1::uuid ORDER BY created_at, id",
    )
    .bind(item)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn email_of(app: &TestApp, user: Uuid) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1").bind(user).fetch_one(&app.pool).await.unwrap()
}

/// The decoded body of the first mail to `to` containing `needle`, waiting for it.
async fn mail_with(stack: &Stack, to: &str, needle: &str) -> String {
    let find = || stack.smtp.mails_to(to).into_iter().map(|m| m.decoded()).find(|m| m.contains(needle));
    let arrived = eventually(WITHIN, || async { find().is_some() }).await;
    assert!(arrived, "no mail to {to} containing {needle:?}");
    find().unwrap()
}

/// The first SMS to `to` containing `needle`, waiting for it.
async fn sms_with(stack: &Stack, to: &str, needle: &str) -> String {
    let find = || stack.twilio.messages().into_iter().find(|m| m.to == to && m.body.contains(needle)).map(|m| m.body);
    let arrived = eventually(WITHIN, || async { find().is_some() }).await;
    assert!(arrived, "no SMS to {to} containing {needle:?}");
    find().unwrap()
}

/// The sender's ledger over HTTP: the one row for `item`.
pub(crate) async fn ledger_row(app: &TestApp, token: &str, item: &str) -> Value {
    let ledger = json_of(app.my_transactions(Some(token), "").await, 200).await;
    let rows: Vec<&Value> = ledger["items"].as_array().unwrap().iter().filter(|r| r["item_id"] == item).collect();
    assert_eq!(rows.len(), 1, "one transaction for the item: {ledger}");
    rows[0].clone()
}

/// Deposit to `locker` for a phone receiver, drop-off from the app, and wait until stored.
pub(crate) async fn deposit_and_store(stack: &Stack, token: &str, locker: &str, phone: &str) -> String {
    let body = json!({ "locker_id": locker, "name": "Books", "receiver_phone": phone });
    let item = id(&json_of(stack.deposit(token, &body).await, 201).await);
    json_of(stack.drop_off(token, &item).await, 200).await;
    reaches(stack, &item, "stored").await;
    item
}

/// The pickup code sent by SMS to `phone`, waiting for it. Codes (queue
/// `otp`) and notices (queue `notify`) may arrive in either order, and a
/// notice may hold digit runs too (the point's name here), so the code is
/// read from the code message: `Lockers: <code> to collect ...`.
pub(crate) async fn sms_code(stack: &Stack, phone: &str) -> String {
    let code_in = |body: &str| {
        let code = body.strip_prefix("Lockers: ")?.split(' ').next()?;
        (body.contains("Never share") && code.len() == 6).then(|| code.to_owned())
    };
    let find = || stack.twilio.messages().into_iter().filter(|m| m.to == phone).find_map(|m| code_in(&m.body));
    let arrived = eventually(WITHIN, || async { find().is_some() }).await;
    assert!(arrived, "no code by SMS to {phone}");
    find().unwrap()
}

/// The receiver at the locker: asks for a code by SMS and collects.
pub(crate) async fn collect_by_sms(stack: &Stack, locker: &str, phone: &str) {
    let locker_id: Uuid = locker.parse().unwrap();
    assert_eq!(stack.pickup_request(locker_id, phone).await.status(), 202);
    let code = sms_code(stack, phone).await;
    json_of(stack.pickup_collect(locker_id, &code).await, 200).await;
}

#[tokio::test]
async fn a_full_exchange_through_a_controller_over_http_bills_the_lockers_size_and_tells_the_sender_the_ledgers_amount()
{
    let mut flags = HTTP_DOORS.to_vec();
    flags.push("--tariffs=S=4000,M=7000");
    let stack = Stack::spawn(&flags).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (sender, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["S", "M"]).await;
    let fake = controller(&stack, &admin, &site).await;
    let (locker, phone) = (site.lockers[1].as_str(), "+919876543210");

    // Deposit: a reservation and a drop-off code, no door command yet.
    let body = json!({ "locker_id": locker, "name": "Books", "receiver_phone": phone });
    let item = json_of(stack.deposit(&token, &body).await, 201).await;
    let item_id = id(&item);
    assert_eq!(item["status"], "reserved");
    assert!(commands(&stack, &item_id).await.is_empty(), "no door command at reservation");
    assert!(fake.requests().is_empty(), "the controller saw nothing");

    // Drop-off: the open reaches the controller with the command id as key and the point's bearer.
    assert_eq!(json_of(stack.drop_off(&token, &item_id).await, 200).await["door_no"], 2);
    assert!(eventually(WITHIN, || async { !fake.requests().is_empty() }).await, "the deposit open never arrived");
    let deposit = commands(&stack, &item_id).await[0].0;
    let open = &fake.requests()[0];
    assert_eq!(open.path, "/v1/doors/2/open");
    assert_eq!(open.idempotency_key.as_deref(), Some(deposit.to_string().as_str()));
    assert_eq!(open.authorization.as_deref(), Some(format!("Bearer {}", site.controller_token).as_str()));
    assert_eq!(open.body, json!({ "command_id": deposit, "reason": "deposit", "pulse_ms": 500 }));

    // The fake reports door_closed: stored, locker occupied, the receiver told by SMS.
    reaches(&stack, &item_id, "stored").await;
    assert_eq!(locker_status(&stack, locker).await, "occupied");
    let told = sms_with(&stack, phone, "door 2").await;
    assert!(told.contains("80 Feet Road"), "{told}");
    // The amount so far: the first started hour at the M price.
    let view = json_of(stack.item(&token, &item_id).await, 200).await;
    assert_eq!(view["amount"], json!({ "minor": 7000, "currency": "INR" }), "{view}");
    assert_eq!((view["amount_hours"].as_i64(), view["amount_settled"].as_bool()), (Some(1), Some(false)));
    let list = json_of(stack.items(&token, "").await, 200).await;
    assert_eq!(list["items"][0]["amount"], view["amount"], "{list}");

    // The receiver asks for a code by SMS, collects; the pickup open reaches the controller.
    collect_by_sms(&stack, locker, phone).await;
    reaches(&stack, &item_id, "collected").await;
    let all = commands(&stack, &item_id).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let pickup = all[1].0;
    assert_eq!(all[1].1, "pickup");
    let opens = fake.requests();
    let pickup_open = opens.iter().find(|r| r.body["reason"] == "pickup").expect("the pickup open");
    assert_eq!(pickup_open.idempotency_key.as_deref(), Some(pickup.to_string().as_str()));
    assert_eq!(pickup_open.path, "/v1/doors/2/open");

    // The sender's mail carries the amount, the ledger's, at the M price.
    let row = ledger_row(&stack, &token, &item_id).await;
    assert_eq!((row["amount_paise"].as_i64(), row["hours"].as_i64()), (Some(7000), Some(1)), "{row}");
    let sender_email = email_of(&stack, sender).await;
    let mail = mail_with(&stack, &sender_email, "was collected").await;
    assert!(mail.contains(row["amount_display"].as_str().unwrap()), "{mail} vs {row}");
    assert!(mail.contains("INR 70.00"), "{mail}");
    let view = json_of(stack.item(&token, &item_id).await, 200).await;
    assert_eq!(view["amount"]["minor"], 7000);
    assert_eq!(view["amount_settled"], true);

    // The door reported closed after the pickup: the locker is free again; each door pulsed once.
    locker_reaches(&stack, locker, "available").await;
    assert!(commands(&stack, &item_id).await.iter().all(|c| c.2 == "acked" && c.3), "both opens acked and closed");
    assert_eq!((fake.pulses(deposit), fake.pulses(pickup)), (1, 1));
}

#[tokio::test]
async fn a_full_exchange_with_an_email_only_receiver_sends_the_code_and_the_receipt_by_email() {
    let stack = Stack::spawn(&[]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (sender, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M"]).await;
    let (locker, receiver) = (site.lockers[0].as_str(), "ravi@example.com");

    let body = json!({ "locker_id": locker, "name": "Keys", "receiver_email": "Ravi@Example.com" });
    let item_id = id(&json_of(stack.deposit(&token, &body).await, 201).await);
    json_of(stack.drop_off(&token, &item_id).await, 200).await;
    reaches(&stack, &item_id, "stored").await;
    let told = mail_with(&stack, receiver, "door 1").await;
    assert!(told.contains("Keys"), "{told}");

    let locker_id: Uuid = locker.parse().unwrap();
    assert_eq!(stack.pickup_request(locker_id, receiver).await.status(), 202);
    let code = stack.email_code(receiver, 2).await;
    json_of(stack.pickup_collect(locker_id, &code).await, 200).await;
    reaches(&stack, &item_id, "collected").await;

    let row = ledger_row(&stack, &token, &item_id).await;
    assert_eq!(row["amount_paise"], 5000, "{row}");
    let mail = mail_with(&stack, &email_of(&stack, sender).await, "was collected").await;
    assert!(mail.contains(row["amount_display"].as_str().unwrap()), "{mail} vs {row}");
    mail_with(&stack, receiver, "You collected").await;
    locker_reaches(&stack, locker, "available").await;
    assert!(stack.twilio.messages().is_empty(), "no phone anywhere, no SMS");
}

#[tokio::test]
async fn a_force_clear_during_a_collect_ends_in_one_state_with_one_transaction_and_both_doors_accounted_for() {
    let stack = Stack::spawn(&HTTP_DOORS).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (sender, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M"]).await;
    let fake = controller(&stack, &admin, &site).await;
    let (locker, phone) = (site.lockers[0].as_str(), "+919876543211");
    let item_id = deposit_and_store(&stack, &token, locker, phone).await;

    // The controller now pulses at once but answers slowly: the pickup open is in flight.
    fake.set_faults(Faults { latency: Duration::from_millis(1500), ..Faults::default() });
    collect_by_sms(&stack, locker, phone).await;
    let in_flight = eventually(WITHIN, || async { fake.requests().iter().any(|r| r.body["reason"] == "pickup") }).await;
    assert!(in_flight, "the pickup open never reached the controller");
    assert_eq!(item_status(&stack, &item_id).await, "stored", "not acknowledged yet");
    let cleared = json_of(stack.force_clear(&admin, locker, "stuck parcel report").await, 202).await;
    assert_eq!(cleared["item_id"], item_id.as_str());

    // Both opens end acknowledged, each door pulsed once, and the door's
    // latest open (the force-clear's) reported closed. (The pickup's own
    // door_closed counts only if it arrived before the force-clear was issued:
    // a report about an older open of a door is stale.)
    let settled = eventually(WITHIN, || async {
        let all = commands(&stack, &item_id).await;
        all.len() == 3 && all.iter().all(|c| c.2 == "acked") && all[2].3
    })
    .await;
    let all = commands(&stack, &item_id).await;
    assert!(settled, "{all:?}");
    assert_eq!(all.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["deposit", "pickup", "force_clear"]);
    for command in &all {
        assert_eq!(fake.pulses(command.0), 1, "{command:?} pulsed once");
    }

    // One end state: the acknowledgement that came first decided it; the other changed nothing.
    let status = item_status(&stack, &item_id).await;
    assert!(["collected", "force_removed"].contains(&status.as_str()), "{status}");
    let transactions: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE item_id = $1::uuid")
        .bind(&item_id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(transactions, 1);
    let row = ledger_row(&stack, &token, &item_id).await;
    let sender_email = email_of(&stack, sender).await;
    let (told, not_told) = if status == "collected" {
        ("item_collected", "item_force_removed")
    } else {
        ("item_force_removed", "item_collected")
    };
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM notifications WHERE recipient = $1")
        .bind(&sender_email)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    assert!(kinds.iter().any(|k| k == told) && !kinds.iter().any(|k| k == not_told), "{status}: {kinds:?}");
    let needle = if status == "collected" { "was collected" } else { "removed your parcel" };
    let mail = mail_with(&stack, &sender_email, needle).await;
    assert!(mail.contains(row["amount_display"].as_str().unwrap()), "{mail} vs {row}");
    locker_reaches(&stack, locker, "available").await;
}

#[tokio::test]
async fn a_force_clear_of_a_stored_item_removes_it_bills_its_sizes_price_once_and_frees_the_locker() {
    let stack = Stack::spawn(&["--tariffs=M=6000"]).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (sender, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M"]).await;
    let locker = site.lockers[0].as_str();
    let item_id = deposit_and_store(&stack, &token, locker, "+919876543212").await;

    let cleared = json_of(stack.force_clear(&admin, locker, "damaged door").await, 202).await;
    assert_eq!(cleared["item_id"], item_id.as_str());
    reaches(&stack, &item_id, "force_removed").await;
    let row = ledger_row(&stack, &token, &item_id).await;
    assert_eq!((row["amount_paise"].as_i64(), row["hours"].as_i64()), (Some(6000), Some(1)), "{row}");
    let mail = mail_with(&stack, &email_of(&stack, sender).await, "removed your parcel").await;
    assert!(mail.contains("INR 60.00"), "{mail}");
    locker_reaches(&stack, locker, "available").await;
    // The receiver's pickup code (none asked yet) cannot be had any more: the item is gone.
    let view = json_of(stack.item(&token, &item_id).await, 200).await;
    assert_eq!((view["status"].as_str(), view["amount_settled"].as_bool()), (Some("force_removed"), Some(true)));
}

/// Waits for the simulator's heartbeats to bring `point` online.
pub(crate) async fn comes_online(app: &TestApp, point: &str) {
    let online = eventually(WITHIN, || async {
        let beat: Option<chrono::DateTime<Utc>> =
            sqlx::query_scalar("SELECT last_heartbeat_at FROM locker_points WHERE id = $1::uuid")
                .bind(point)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        beat.is_some()
    })
    .await;
    assert!(online, "no heartbeat from the simulator");
}

/// The shipped simulator as a child process, killed when dropped.
pub(crate) struct Simulator(pub(crate) std::process::Child);

impl Drop for Simulator {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[tokio::test]
async fn the_shipped_simulator_serves_as_the_points_controller_for_a_whole_exchange() {
    let stack = Stack::spawn(&HTTP_DOORS).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (_, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M"]).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lockers-admin"))
        .args(["simulate-controller", "--listen", "127.0.0.1:0", "--api", &stack.url(""), "--token"])
        .arg(&site.controller_token)
        .args(["--point-id", &site.point, "--heartbeat-secs", "1", "--close-after-ms", "100"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = simulator_url(&mut child).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let simulator = Simulator(child);
    wire(&stack, &admin, &site, &url).await;
    comes_online(&stack, &site.point).await;

    let (locker, phone) = (site.lockers[0].as_str(), "+919876543213");
    let item_id = deposit_and_store(&stack, &token, locker, phone).await;
    collect_by_sms(&stack, locker, phone).await;
    reaches(&stack, &item_id, "collected").await;
    locker_reaches(&stack, locker, "available").await;
    let all = commands(&stack, &item_id).await;
    assert!(all.len() == 2 && all.iter().all(|c| c.2 == "acked" && c.3), "{all:?}");
    assert_eq!(ledger_row(&stack, &token, &item_id).await["amount_paise"], 5000);
    drop(simulator);
}

#[tokio::test]
async fn exchanges_through_a_controller_failing_half_the_time_complete_with_each_door_pulsed_once() {
    let stack = Stack::spawn(&HTTP_DOORS).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (_, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M", "M", "M", "M"]).await;
    let fake = controller(&stack, &admin, &site).await;
    // Every open fails until two have been refused, so retries surely happen;
    // then half of them fail.
    fake.set_faults(Faults { fail_rate: 1.0, ..Faults::default() });

    // Four exchanges side by side (8 opens): with half failing, some are retried.
    let phones: Vec<String> = (0..4).map(|n| format!("+91987654330{n}")).collect();
    let run = |n: usize| {
        let (stack, token, locker, phone) = (&stack, &token, site.lockers[n].as_str(), phones[n].as_str());
        async move {
            let item = deposit_and_store(stack, token, locker, phone).await;
            collect_by_sms(stack, locker, phone).await;
            reaches(stack, &item, "collected").await;
            locker_reaches(stack, locker, "available").await;
            item
        }
    };
    let loosen = async {
        let refused = eventually(WITHIN, || async { fake.requests().len() >= 2 }).await;
        fake.set_faults(Faults { fail_rate: 0.5, ..Faults::default() });
        refused
    };
    let (items, refused) = tokio::join!(futures::future::join_all((0..4).map(run)), loosen);
    assert!(refused, "no open reached the controller");

    let mut opens = 0;
    for item in &items {
        let all = commands(&stack, item).await;
        assert!(all.len() == 2 && all.iter().all(|c| c.2 == "acked" && c.3), "{all:?}");
        for command in &all {
            assert_eq!(fake.pulses(command.0), 1, "{command:?} pulsed once");
            opens += 1;
        }
        assert_eq!(ledger_row(&stack, &token, item).await["amount_paise"], 5000);
    }
    let requests = fake.requests().len();
    assert!(requests > opens, "the failures were retried ({requests} requests for {opens} opens)");
}

#[tokio::test]
async fn the_sweep_fails_door_commands_left_in_flight_past_their_retry_window() {
    // No workers: the drop-off's and the force-clear's opens stay `pending`, as
    // after a job the engine gave up on without its handler failing the command.
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    let (_, token) = app.user_with_role("user").await;
    let site = site(&app, &admin, &["M", "M"]).await;
    let body = json!({ "locker_id": site.lockers[0], "name": "Books", "receiver_phone": "+919876543214" });
    let item_id = id(&json_of(app.deposit(&token, &body).await, 201).await);
    json_of(app.drop_off(&token, &item_id).await, 200).await;
    let cleared = json_of(app.force_clear(&admin, &site.lockers[1], "inspection").await, 202).await;
    let pending: Vec<Uuid> =
        vec![commands(&app, &item_id).await[0].0, cleared["command_id"].as_str().unwrap().parse().unwrap()];

    let settings = SweepSettings::from_config(&app.config);
    let stuck_after = settings.door_stuck_after;
    assert!(stuck_after > app.config.door_retry_window, "past the retry window");
    let stuck_after = chrono::Duration::from_std(stuck_after).unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let early = Utc::now() + stuck_after - chrono::Duration::seconds(60);
    let failed = doors::fail_stuck(&mut conn, &Actor::system(), early, settings.door_stuck_after).await.unwrap();
    assert_eq!(failed, 0, "a command within its window (and the worker's last run) is left alone");

    let later = Utc::now() + stuck_after + chrono::Duration::seconds(1);
    let report = sweep::run(&mut conn, &Actor::system(), later, &settings).await.unwrap();
    assert_eq!(report.stuck_doors_failed, 2, "{report:?}");
    for command in &pending {
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM door_commands WHERE id = $1")
                .bind(command)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(status, "failed");
        assert!(error.is_some_and(|e| e.contains("no outcome")));
    }
    // The lifecycle ran: the reservation is cancelled, both lockers out of service, admins alerted.
    assert_eq!(item_status(&app, &item_id).await, "cancelled");
    for locker in &site.lockers {
        assert_eq!(locker_status(&app, locker).await, "maintenance");
    }
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE kind = 'admin_alert'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(alerts, 2);
    let again = sweep::run(&mut conn, &Actor::system(), later, &settings).await.unwrap();
    assert_eq!(again.stuck_doors_failed, 0, "a failed command is final");
}

#[tokio::test]
async fn an_abandoned_item_is_billed_at_its_lockers_size_price() {
    use lockers_core::exchange::collection::expiry::{ExpirySettings, abandon_expired, expire_stored};

    let app = TestApp::spawn_with(&["--tariffs=M=3000"]).await;
    let spot = app.spot("Jayanagar", 1).await; // size M lockers
    let sender = app.sender(None).await;
    let to = crate::client::pickup::Receiver { phone: Some("+919876543215"), email: None };
    let item = app.stored_item_since(&sender, spot.lockers[0], to, chrono::Duration::hours(2)).await;
    let stored_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT stored_at FROM items WHERE id = $1").bind(item).fetch_one(&app.pool).await.unwrap();

    let settings = ExpirySettings::from_config(&app.config);
    let mut conn = app.pool.acquire().await.unwrap();
    let expired_at = stored_at + chrono::Duration::hours(73);
    assert_eq!(expire_stored(&mut conn, &Actor::system(), expired_at, &settings).await.unwrap(), 1);
    let return_by = expired_at + chrono::Duration::from_std(settings.return_window).unwrap();
    assert_eq!(abandon_expired(&mut conn, &Actor::system(), return_by, &settings).await.unwrap(), 1);
    // Billing stopped at the return deadline: 73 h + the return window, every started hour at the M price.
    let hours = 73 + settings.return_window.as_secs().div_ceil(3600) as i64;
    assert_eq!(app.bill(item).await, Some((hours * 3_000, hours as i32)));
}

#[tokio::test]
async fn a_code_typed_while_the_point_is_offline_is_refused_unspent_and_works_once_it_is_back() {
    let stack = Stack::spawn(&HTTP_DOORS).await;
    let (_, admin) = stack.user_with_role("admin").await;
    let (_, token) = stack.user_with_role("user").await;
    let site = site(&stack, &admin, &["M"]).await;
    let fake = controller(&stack, &admin, &site).await;
    let (locker, phone) = (site.lockers[0].as_str(), "+919876501234");
    let item = deposit_and_store(&stack, &token, locker, phone).await;
    let locker_id: Uuid = locker.parse().unwrap();
    assert_eq!(stack.pickup_request(locker_id, phone).await.status(), 202);
    let code = sms_code(&stack, phone).await;

    // The controller has been silent for five minutes: the point is offline.
    sqlx::query("UPDATE locker_points SET last_heartbeat_at = now() - interval '5 minutes' WHERE id = $1::uuid")
        .bind(&site.point)
        .execute(&stack.pool)
        .await
        .unwrap();
    let refused = stack.pickup_collect(locker_id, &code).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(json_of(refused, 409).await["error"]["code"], "point_offline");
    let commands = commands(&stack, &item).await;
    assert_eq!(commands.len(), 1, "no pickup command, only the deposit's: {commands:?}");
    assert_eq!(item_status(&stack, &item).await, "stored");

    // A heartbeat later, the same code opens the door.
    assert_eq!(fake.report("heartbeat", None, None).await.unwrap().as_u16(), 204);
    json_of(stack.pickup_collect(locker_id, &code).await, 200).await;
    reaches(&stack, &item, "collected").await;
}
