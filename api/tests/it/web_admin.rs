//! The admin console (`/admin`): an admin runs the network from it in a real
//! browser (dashboard figures, a new point and locker, maintenance, a
//! force-clear, a dead job retried, the audit log), every page passes axe and
//! loads nothing from outside; and over plain HTTP, the console is for admins
//! only and its forms need their CSRF token.

use std::time::Duration;

use chrono::Utc;
use lockers_core::accounts::admin::create_admin;
use lockers_core::accounts::contact::Email;
use lockers_core::accounts::password::Password;
use lockers_core::accounts::users::Name;
use lockers_core::audit::Actor;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::json;
use uuid::Uuid;

use crate::browser::Browser;
use crate::client::pickup::Receiver;
use crate::harness::{Stack, eventually};
use crate::web::Visitor;

const ADMIN_EMAIL: &str = "admin@example.com";
pub(crate) const PASSWORD: &str = "a long admin passphrase";

/// An account with a password and a proven email, as `lockers-admin
/// create-admin` makes it; `role` "user" demotes it afterwards.
pub(crate) async fn account(stack: &Stack, email: &str, role: &str) -> Uuid {
    let mut conn = stack.app.pool.acquire().await.unwrap();
    let name = Name::parse("Console Admin").unwrap();
    let password = Password::parse(PASSWORD.to_owned()).unwrap();
    let made = create_admin(&mut conn, &Actor::operator(), &name, &Email::parse(email).unwrap(), password).await;
    assert!(made.is_ok(), "{made:?}");
    let id: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET role = $2 WHERE id = $1").bind(id).bind(role).execute(&stack.app.pool).await.unwrap();
    id
}

/// A dead job of the `sweep` queue whose payload runs fine once retried.
pub(crate) async fn dead_job(stack: &Stack) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO jobs (queue, payload, state, attempts, max_attempts, last_error, finished_at)
         VALUES ('sweep', $1, 'dead', 3, 3, 'database timed out (test)', now()) RETURNING id",
    )
    .bind(json!({ "at": Utc::now().timestamp() }))
    .fetch_one(&stack.app.pool)
    .await
    .unwrap()
}

/// A door command that failed `ago` before now.
async fn failed_door(stack: &Stack, locker: Uuid, ago: chrono::Duration) {
    sqlx::query(
        "INSERT INTO door_commands (id, locker_id, reason, status, attempts, last_error, failed_at)
         VALUES ($1, $2, 'pickup', 'failed', 40, 'controller answered 503', now() - $3)",
    )
    .bind(Uuid::now_v7())
    .bind(locker)
    .bind(ago)
    .execute(&stack.app.pool)
    .await
    .unwrap();
}

/// A Visitor signed in to the console as `email`.
async fn signed_in(stack: &Stack, email: &str) -> Visitor {
    let mut visitor = Visitor::new(&stack.app.url(""));
    let csrf = visitor.csrf("/app/signin").await;
    let form = [("csrf", csrf.as_str()), ("identifier", email), ("password", PASSWORD)];
    assert_eq!(visitor.post_form("/app/signin", &form).await.status(), StatusCode::SEE_OTHER);
    visitor
}

pub(crate) async fn figure(browser: &Browser, id: &str) -> String {
    let script = format!("return document.getElementById('{id}').innerText");
    browser.run(&script, json!([])).await.as_str().unwrap_or_default().trim().to_owned()
}

/// axe on the page shown now: no serious or critical violation.
async fn accessible(browser: &Browser, page: &str) {
    let violations = browser.axe_serious().await;
    assert!(violations.is_empty(), "axe on {page}: {violations:?}");
}

async fn count(stack: &Stack, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&stack.app.pool).await.unwrap()
}

#[tokio::test]
async fn an_admin_runs_the_network_from_the_console_in_chromium() {
    let stack = Stack::spawn(&[]).await;
    let admin = account(&stack, ADMIN_EMAIL, "admin").await;
    // Seeded: one point (online: simulated doors) with three lockers, one
    // holding a stored item; a dead job; a door that failed an hour ago and
    // one that failed two days ago (outside the 24 hours).
    let spot = stack.spot("Seeded Hub", 3).await;
    let sender = stack.sender(None).await;
    let to = Receiver { phone: None, email: Some("receiver@example.com") };
    let item = stack.stored_item_since(&sender, spot.lockers[0], to, chrono::Duration::minutes(30)).await;
    let job = dead_job(&stack).await;
    failed_door(&stack, spot.lockers[2], chrono::Duration::hours(1)).await;
    failed_door(&stack, spot.lockers[2], chrono::Duration::hours(48)).await;

    let browser = Browser::start().await;
    let local = stack.app.url("/");
    browser.set_window(1280, 900).await;

    // Signing in from /app/signin?next=/admin lands on the dashboard.
    browser.open(&stack.app.url("/app/signin?next=/admin")).await;
    browser.fill("#identifier", ADMIN_EMAIL).await;
    browser.fill("#password", PASSWORD).await;
    browser.keys("\u{E007}").await;
    let text = browser.text_when("Points online").await;
    assert!(text.contains("Points online"), "{text}");
    assert!(browser.url().await.ends_with("/admin"), "{}", browser.url().await);
    assert_eq!(figure(&browser, "fig-online").await, "1");
    assert_eq!(figure(&browser, "fig-offline").await, "0");
    assert_eq!(figure(&browser, "fig-stored").await, "1");
    assert_eq!(figure(&browser, "fig-expired").await, "0");
    assert_eq!(figure(&browser, "fig-dead").await, "1");
    assert_eq!(figure(&browser, "fig-failed-doors").await, "1");
    let row = figure(&browser, &format!("point-{}", spot.point_id)).await;
    assert!(row.contains("Seeded Hub") && row.contains("Online"), "{row}");
    let counts: Vec<&str> = row.split_whitespace().rev().take(5).collect();
    assert_eq!(counts, ["3", "0", "1", "0", "2"], "total, maintenance, occupied, reserved, available: {row}");
    let dead_in_sweep = figure(&browser, "queue-sweep").await;
    assert!(dead_in_sweep.starts_with("sweep"), "{dead_in_sweep}");
    accessible(&browser, "the dashboard").await;
    browser.screenshot("admin-dashboard").await;

    // A new point in the seeded city, then a locker there, put in maintenance.
    let city: Uuid = sqlx::query_scalar("SELECT city_id FROM locker_points WHERE id = $1")
        .bind(spot.point_id)
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    browser.open(&stack.app.url("/admin/points")).await;
    browser.select("#point-city", &city.to_string()).await;
    browser.fill("#point-name", "Console Point").await;
    browser.fill("#point-address", "12 MG Road").await;
    browser.click("#new-point button[type=submit]").await;
    let text = browser.text_when("shown only this once").await;
    assert!(text.contains("Locker point Console Point"), "{text}");
    let token = figure(&browser, "controller-token").await;
    assert_eq!(token.len(), 43, "the controller token, once: {token}");
    let point: Uuid = sqlx::query_scalar("SELECT id FROM locker_points WHERE name = 'Console Point'")
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    accessible(&browser, "a new point's page").await;
    browser.fill("#locker-door", "7").await;
    browser.select("#locker-size", "L").await;
    browser.click("#new-locker button[type=submit]").await;
    let text = browser.text_when("The locker was added.").await;
    assert!(text.contains("The locker was added."), "{text}");
    browser.click("#locker-7 button.maintenance-on").await;
    let text = browser.text_when("The locker is in maintenance.").await;
    assert!(text.contains("The locker is in maintenance."), "{text}");
    let status: String = sqlx::query_scalar("SELECT status FROM lockers WHERE point_id = $1 AND door_no = 7")
        .bind(point)
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    assert_eq!(status, "maintenance");
    accessible(&browser, "a point's page").await;

    browser.open(&stack.app.url("/admin/points")).await;
    let text = browser.text_when("Console Point").await;
    assert!(text.contains("Console Point") && text.contains("Seeded Hub"), "{text}");
    accessible(&browser, "the points").await;
    browser.screenshot("admin-points").await;

    // Force-clear the occupied locker with a reason: the simulated door opens
    // and the item is force-removed.
    browser.open(&stack.app.url(&format!("/admin/points/{}", spot.point_id))).await;
    browser.fill("#reason-1", "customer called: parcel left too long").await;
    browser.click("#locker-1 form.force-clear button[type=submit]").await;
    let text = browser.text_when("The door will open").await;
    assert!(text.contains("The door will open"), "{text}");
    let removed =
        eventually(Duration::from_secs(15), || async { stack.item_status(item).await == "force_removed" }).await;
    assert!(removed, "the item was force-removed: {}", stack.item_status(item).await);
    let reason: String = sqlx::query_scalar(
        "SELECT after->>'reason' FROM audit_log WHERE action = 'locker.force_clear' AND actor_id = $1",
    )
    .bind(admin)
    .fetch_one(&stack.app.pool)
    .await
    .unwrap();
    assert_eq!(reason, "customer called: parcel left too long");

    // The dead job, retried from its page (audited as the admin).
    browser.open(&stack.app.url("/admin/jobs")).await;
    let text = browser.text_when("database timed out (test)").await;
    assert!(text.contains("database timed out (test)"), "{text}");
    accessible(&browser, "the jobs").await;
    browser.screenshot("admin-jobs").await;
    browser.click(&format!("#job-{job} button[type=submit]")).await;
    let text = browser.text_when("The job is back in its queue.").await;
    assert!(text.contains("The job is back in its queue."), "{text}");
    let retried = format!(
        "SELECT count(*) FROM audit_log WHERE action = 'job.retry' AND target_id = '{job}' AND actor_id = '{admin}'"
    );
    assert_eq!(count(&stack, &retried).await, 1);
    let live = format!("SELECT count(*) FROM jobs WHERE id = {job} AND state <> 'dead'");
    assert_eq!(count(&stack, &live).await, 1, "the job left the dead");

    // The audit log shows what was done, filtered by action.
    browser.open(&stack.app.url("/admin/audit?action=locker.force_clear")).await;
    let text = browser.text_when("locker.force_clear").await;
    assert!(text.contains("locker.force_clear") && !text.contains("job.retry"), "{text}");
    accessible(&browser, "the audit log").await;
    browser.open(&stack.app.url("/admin/audit")).await;
    let text = browser.text_when("job.retry").await;
    assert!(text.contains("job.retry") && text.contains("locker.maintenance_on"), "{text}");

    // The other pages: items (filtered), transactions, users, places.
    browser.open(&stack.app.url("/admin/items?status=force_removed")).await;
    let text = browser.text_when("Blue parcel").await;
    assert!(text.contains("Blue parcel") && text.contains("Force-removed"), "{text}");
    accessible(&browser, "the items").await;
    browser.open(&stack.app.url("/admin/transactions")).await;
    let text = browser.text_when("Blue parcel").await;
    assert!(text.contains("Blue parcel") && text.contains("INR"), "the force-clear's bill: {text}");
    accessible(&browser, "the transactions").await;
    browser.open(&stack.app.url(&format!("/admin/transactions?point_id={point}"))).await;
    let text = browser.text_when("No transactions match.").await;
    assert!(text.contains("No transactions match."), "another point's bills only: {text}");
    browser
        .open(&stack.app.url(&format!("/admin/items?point_id={}&from=2020-01-01&to=2020-12-31", spot.point_id)))
        .await;
    let text = browser.text_when("No items match.").await;
    assert!(text.contains("No items match."), "nothing reserved in 2020: {text}");
    browser.open(&stack.app.url("/admin/users")).await;
    let text = browser.text_when(ADMIN_EMAIL).await;
    assert!(text.contains(ADMIN_EMAIL) && text.contains("You"), "{text}");
    accessible(&browser, "the users").await;
    browser.open(&stack.app.url("/admin/places")).await;
    let text = browser.text_when("State Seeded Hub").await;
    assert!(text.contains("City Seeded Hub"), "{text}");
    accessible(&browser, "the places").await;

    let outside = browser.outside_requests(&local).await;
    assert!(outside.is_empty(), "requests left 127.0.0.1: {outside:?}");
    browser.quit().await;
}

#[tokio::test]
async fn the_console_is_for_admins_only_and_its_forms_need_the_csrf_token() {
    let stack = Stack::spawn(&[]).await;
    account(&stack, ADMIN_EMAIL, "admin").await;
    account(&stack, "user@example.com", "user").await;

    // Signed out: to sign in, and back.
    let mut stranger = Visitor::new(&stack.app.url(""));
    let response = stranger.get("/admin/jobs").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/app/signin?next=/admin/jobs");
    let csrf = stranger.csrf("/app/signin").await;
    let refused = stranger.post_form("/admin/states", &[("csrf", &csrf), ("name", "Goa")]).await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER, "a signed-out form goes to sign in too");

    // A user who is not an admin: 403 on every page and form.
    let mut user = signed_in(&stack, "user@example.com").await;
    for path in ["/admin", "/admin/points", "/admin/audit", "/admin/jobs"] {
        let response = user.get(path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(response.text().await.unwrap().contains("forbidden"), "{path}");
    }
    let csrf = user.csrf("/app/signin").await;
    let response = user.post_form("/admin/states", &[("csrf", &csrf), ("name", "Goa")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // An admin: a form without its token is refused; with it, it goes through.
    let mut admin = signed_in(&stack, ADMIN_EMAIL).await;
    let missing = admin.post_form("/admin/states", &[("name", "Goa")]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing.text().await.unwrap().contains("csrf_failed"));
    let forged = admin.post_form("/admin/states", &[("csrf", "forged"), ("name", "Goa")]).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(count(&stack, "SELECT count(*) FROM states").await, 0, "nothing was written");
    let csrf = admin.csrf("/admin/places").await;
    let created = admin.post_form("/admin/states", &[("csrf", &csrf), ("name", "Goa")]).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(created.headers()[LOCATION], "/admin/places?done=state_created");
    assert_eq!(count(&stack, "SELECT count(*) FROM audit_log WHERE action = 'state.create'").await, 1);

    // A refused write draws its page again with the API's status and a message.
    let taken = admin.post_form("/admin/states", &[("csrf", &csrf), ("name", "goa")]).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert!(taken.text().await.unwrap().contains("That name is already used here."));
    let spot = stack.spot("Hub", 1).await;
    let path = format!("/admin/lockers/{}/force-clear", spot.lockers[0]);
    let no_reason = admin.post_form(&path, &[("csrf", &csrf), ("reason", "  ")]).await;
    assert_eq!(no_reason.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.text().await.unwrap().contains("Give a reason"));
    assert_eq!(count(&stack, "SELECT count(*) FROM door_commands").await, 0, "no door opened");

    // Bad filters and ids are pages with a message, never a 500.
    let bad = admin.get("/admin/items?from=yesterday&point_id=nope").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("A filter was not understood"));
    for far in ["-5000-01-01", "0001-01-01", "99999-01-01"] {
        let page = admin.get(&format!("/admin/items?from={far}")).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "from={far}");
        let page = admin.get(&format!("/admin/transactions?to={far}")).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "to={far}");
    }
    assert_eq!(admin.get("/admin/points/not-an-id").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(admin.get(&format!("/admin/points/{}", Uuid::now_v7())).await.status(), StatusCode::NOT_FOUND);
    let retry = admin.post_form("/admin/jobs/12345/retry", &[("csrf", &csrf)]).await;
    assert_eq!(retry.status(), StatusCode::CONFLICT);
}

/// The id of the row `sql` finds.
async fn id_of(stack: &Stack, sql: &str) -> Uuid {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&stack.app.pool).await.unwrap()
}

#[tokio::test]
async fn places_lockers_and_users_are_edited_through_the_console_and_audited() {
    let stack = Stack::spawn(&[]).await;
    let admin_id = account(&stack, ADMIN_EMAIL, "admin").await;
    let user = account(&stack, "user@example.com", "user").await;
    let mut admin = signed_in(&stack, ADMIN_EMAIL).await;
    let csrf = admin.csrf("/admin/places").await;
    let post = async |admin: &mut Visitor, path: &str, form: &[(&str, &str)]| {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        let response = admin.post_form(path, &fields).await;
        let status = response.status();
        let location = response.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_owned());
        (status, location.unwrap_or_default())
    };

    // States and cities: created, renamed, moved.
    assert_eq!(post(&mut admin, "/admin/states", &[("name", "Karnataka")]).await.0, StatusCode::SEE_OTHER);
    assert_eq!(post(&mut admin, "/admin/states", &[("name", "Goa")]).await.0, StatusCode::SEE_OTHER);
    let karnataka = id_of(&stack, "SELECT id FROM states WHERE name = 'Karnataka'").await.to_string();
    let goa = id_of(&stack, "SELECT id FROM states WHERE name = 'Goa'").await.to_string();
    let made = post(&mut admin, "/admin/cities", &[("state_id", &karnataka), ("name", "Panaji")]).await;
    assert_eq!(made, (StatusCode::SEE_OTHER, "/admin/places?done=city_created".to_owned()));
    let city = id_of(&stack, "SELECT id FROM cities WHERE name = 'Panaji'").await.to_string();
    let moved = post(&mut admin, &format!("/admin/cities/{city}"), &[("state_id", &goa), ("name", "Panjim")]).await;
    assert_eq!(moved.0, StatusCode::SEE_OTHER);
    let state_of: Uuid = id_of(&stack, "SELECT state_id FROM cities WHERE name = 'Panjim'").await;
    assert_eq!(state_of.to_string(), goa);
    let (status, _) = post(&mut admin, &format!("/admin/states/{goa}/delete"), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT, "a state with cities stays");
    let page = admin.get("/admin/places").await.text().await.unwrap();
    assert!(page.contains("Panjim") && page.contains("Karnataka"), "{page}");

    // A point, edited; a locker, changed and deleted.
    let body =
        [("city_id", city.as_str()), ("name", "Market Gate"), ("address", "1 Market Road"), ("controller_url", "")];
    let created = admin.post_form("/admin/points", &[&[("csrf", csrf.as_str())][..], &body].concat()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(created.text().await.unwrap().contains("shown only this once"));
    let point = id_of(&stack, "SELECT id FROM locker_points WHERE name = 'Market Gate'").await.to_string();
    let edit = [
        ("city_id", city.as_str()),
        ("name", "Market Gate East"),
        ("address", "1 Market Road"),
        ("controller_url", "http://10.0.0.9"),
    ];
    let (status, to) = post(&mut admin, &format!("/admin/points/{point}"), &edit).await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, format!("/admin/points/{point}?done=point_updated").as_str())
    );
    let added = post(&mut admin, &format!("/admin/points/{point}/lockers"), &[("door_no", "4"), ("size", "S")]).await;
    assert_eq!(added.0, StatusCode::SEE_OTHER);
    let taken = post(&mut admin, &format!("/admin/points/{point}/lockers"), &[("door_no", "4"), ("size", "M")]).await;
    assert_eq!(taken.0, StatusCode::CONFLICT, "door 4 is taken");
    let locker = id_of(&stack, "SELECT id FROM lockers WHERE door_no = 4").await;
    let changed = post(&mut admin, &format!("/admin/lockers/{locker}"), &[("door_no", "5"), ("size", "XL")]).await;
    assert_eq!(changed.0, StatusCode::SEE_OTHER);
    let (door, size): (i32, String) = sqlx::query_as("SELECT door_no, size FROM lockers WHERE id = $1")
        .bind(locker)
        .fetch_one(&stack.app.pool)
        .await
        .unwrap();
    assert_eq!((door, size.as_str()), (5, "XL"));
    let page = admin.get(&format!("/admin/points/{point}?done=locker_updated")).await.text().await.unwrap();
    assert!(page.contains("Market Gate East") && page.contains("The locker was changed."), "{page}");
    let deleted = post(&mut admin, &format!("/admin/lockers/{locker}/delete"), &[]).await;
    assert_eq!(deleted.0, StatusCode::SEE_OTHER);
    assert_eq!(count(&stack, "SELECT count(*) FROM lockers").await, 0);

    // A user made admin, then disabled and enabled; an admin cannot change themself.
    let path = format!("/admin/users/{user}");
    assert_eq!(post(&mut admin, &path, &[("role", "admin")]).await.0, StatusCode::SEE_OTHER);
    assert_eq!(post(&mut admin, &path, &[("disabled", "true")]).await.0, StatusCode::SEE_OTHER);
    let page = admin.get("/admin/users").await.text().await.unwrap();
    assert!(page.contains("Disabled") && page.contains("user@example.com"), "{page}");
    assert_eq!(post(&mut admin, &path, &[("disabled", "false")]).await.0, StatusCode::SEE_OTHER);
    let (status, _) = post(&mut admin, &format!("/admin/users/{admin_id}"), &[("role", "user")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "cannot_modify_self");

    let audited = "SELECT count(*) FROM audit_log WHERE action IN ('state.create', 'city.create', 'city.update',
        'locker_point.create', 'locker_point.update', 'locker.create', 'locker.update', 'locker.delete',
        'user.role_change', 'user.disable', 'user.enable')";
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id").fetch_all(&stack.app.pool).await.unwrap();
    assert_eq!(count(&stack, audited).await, 12, "each change audited once: {actions:?}");
    let by_admin = format!("SELECT count(*) FROM audit_log WHERE actor_id = '{admin_id}'");
    assert_eq!(count(&stack, &by_admin).await, 13, "the changes and the sign-in, by the admin: {actions:?}");
}
