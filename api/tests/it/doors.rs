//! Door commands through the `http` driver to a fake controller speaking
//! protocol v1: the request on the wire, retries through failures, refusals,
//! a retry window running out, a worker killed mid-way, TLS with a private CA,
//! token rotation, and the shipped simulator end to end. Commands are issued
//! directly through core (`doors::issue`), as the exchange's use cases do.

use std::time::Duration;

use lockers_core::audit::Actor;
use lockers_core::exchange::doors::{self, Reason};
use lockers_core::places::lockers::{DoorNo, NewLocker, Size};
use lockers_core::places::{self, ControllerKey, ControllerUrl, NewPoint, PlaceName, PointChanges};
use uuid::Uuid;

use crate::fakes::controller::{FakeController, simulator_url};
use crate::fakes::tls::TestCa;
use crate::harness::{TestApp, Workers, eventually};
use lockers_api::simulator::Faults;

/// The app with the `http` door driver, short retries, and `extra` flags.
async fn app(extra: &[&str]) -> TestApp {
    let mut flags = vec![
        "--door-driver=http",
        "--scheduler=false",
        "--worker-queues=door=8",
        "--job-backoff-base-ms=50",
        "--job-backoff-max-secs=1",
        "--door-attempt-timeout-secs=1",
        "--job-rescue-after-secs=2",
    ];
    flags.extend_from_slice(extra);
    TestApp::spawn_with(&flags).await
}

/// A point with `doors` lockers; its id, its controller token, its lockers.
async fn point(app: &TestApp, doors: i32) -> (Uuid, String, Vec<Uuid>) {
    let mut conn = app.pool.acquire().await.unwrap();
    let by = Actor::operator();
    let unique = |prefix: &str| PlaceName::parse(&format!("{prefix} {}", Uuid::new_v4().simple()), 200).unwrap();
    let state = places::create_state(&mut conn, &by, unique("S")).await.unwrap();
    let city = places::create_city(&mut conn, &by, state.id, unique("C")).await.unwrap();
    let new = NewPoint {
        city_id: city.id,
        name: unique("P"),
        address: places::Address::parse("A").unwrap(),
        controller_url: None,
    };
    let key = ControllerKey::from_config(&app.config);
    let (point, token) = places::create_point(&mut conn, &by, &key, new).await.unwrap();
    let mut lockers = Vec::new();
    for n in 1..=doors {
        let new = NewLocker { point_id: point.id, door_no: DoorNo::parse(n).unwrap(), size: Size::M };
        lockers.push(places::create_locker(&mut conn, &by, new).await.unwrap().id);
    }
    (point.id, token.expose().to_owned(), lockers)
}

async fn wire(app: &TestApp, point: Uuid, url: &str) {
    let changes =
        PointChanges { controller_url: Some(Some(ControllerUrl::parse(url).unwrap())), ..PointChanges::default() };
    places::update_point(&mut app.pool.acquire().await.unwrap(), &Actor::operator(), point, changes).await.unwrap();
}

/// Issues one open per locker, in one transaction (as a use case would).
async fn issue(app: &TestApp, lockers: &[Uuid]) -> Vec<Uuid> {
    let mut tx = app.pool.begin().await.unwrap();
    let mut ids = Vec::new();
    for &locker in lockers {
        ids.push(doors::issue(&mut tx, locker, None, Reason::ForceClear).await.unwrap());
    }
    tx.commit().await.unwrap();
    ids
}

/// (status, attempts, last_error, closed)
async fn command(app: &TestApp, id: Uuid) -> (String, i32, Option<String>, bool) {
    sqlx::query_as("SELECT status, attempts, last_error, closed_at IS NOT NULL FROM door_commands WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn all_in(app: &TestApp, ids: &[Uuid], status: &str, within: Duration) -> bool {
    eventually(within, || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM door_commands WHERE id = ANY($1) AND status = $2")
            .bind(ids)
            .bind(status)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        n == ids.len() as i64
    })
    .await
}

fn workers(app: &TestApp) -> Workers {
    app.start_workers(None)
}

#[tokio::test]
async fn a_command_reaches_the_controller_with_its_path_the_points_token_and_its_id_as_idempotency_key() {
    let app = app(&[]).await;
    let (point, token, lockers) = point(&app, 3).await;
    let fake = FakeController::start(&token, None).await;
    wire(&app, point, &format!("{}/", fake.url)).await;
    let _workers = workers(&app);

    let ids = issue(&app, &lockers[2..3]).await;
    assert!(all_in(&app, &ids, "acked", Duration::from_secs(10)).await, "{:?}", command(&app, ids[0]).await);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/doors/3/open");
    assert_eq!(request.authorization.as_deref(), Some(format!("Bearer {token}").as_str()));
    assert_eq!(request.idempotency_key.as_deref(), Some(ids[0].to_string().as_str()));
    assert_eq!(request.body, serde_json::json!({ "command_id": ids[0], "reason": "force_clear", "pulse_ms": 500 }));
    assert_eq!(fake.pulses(ids[0]), 1);
    // The token presented is derived, not stored: the database holds only its hash and generation.
    let (hash, generation): (Vec<u8>, i32) =
        sqlx::query_as("SELECT controller_token_hash, controller_token_generation FROM locker_points WHERE id = $1")
            .bind(point)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((hash, generation), (places::ControllerToken::digest(&token), 0));
}

#[tokio::test]
async fn through_a_controller_failing_half_the_time_every_command_is_acked_and_each_door_pulsed_once() {
    let app = app(&["--door-retry-window-secs=120"]).await;
    let (point, token, lockers) = point(&app, 20).await;
    let fake = FakeController::start(&token, None).await;
    // Half the opens fail with 500; a tenth pulse and never answer (the resend must not pulse again).
    fake.set_faults(Faults { fail_rate: 0.5, timeout_rate: 0.1, ..Faults::default() });
    wire(&app, point, &fake.url).await;
    let _workers = workers(&app);

    let ids = issue(&app, &lockers).await;
    assert!(all_in(&app, &ids, "acked", Duration::from_secs(60)).await, "not every command was acked");
    for id in &ids {
        assert_eq!(fake.pulses(*id), 1, "command {id} pulsed its door once");
    }
    let requests = fake.requests().len();
    assert!(requests > ids.len(), "the failures were retried ({requests} requests)");
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM door_commands WHERE attempts > 1").fetch_one(&app.pool).await.unwrap();
    assert!(retried > 0);
}

#[tokio::test]
async fn a_jammed_door_fails_at_once_without_a_retry() {
    let app = app(&[]).await;
    let (point, token, lockers) = point(&app, 1).await;
    let fake = FakeController::start(&token, None).await;
    fake.set_faults(Faults { jammed: true, ..Faults::default() });
    wire(&app, point, &fake.url).await;
    let _workers = workers(&app);

    let ids = issue(&app, &lockers).await;
    assert!(all_in(&app, &ids, "failed", Duration::from_secs(10)).await, "{:?}", command(&app, ids[0]).await);
    let (_, attempts, error, _) = command(&app, ids[0]).await;
    assert_eq!(attempts, 1);
    assert!(error.as_deref().is_some_and(|e| e.contains("409") && e.contains("jammed")), "{error:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.requests().len(), 1, "a 4xx is never retried");
    assert_eq!(fake.pulses(ids[0]), 0);
}

#[tokio::test]
async fn a_controller_that_never_answers_or_refuses_connections_ends_failed_when_the_retry_window_closes() {
    let app = app(&["--door-retry-window-secs=4"]).await;
    let (silent_point, token, silent_lockers) = point(&app, 1).await;
    let silent = FakeController::start(&token, None).await;
    silent.set_faults(Faults { timeout_rate: 1.0, ..Faults::default() });
    wire(&app, silent_point, &silent.url).await;
    let (closed_point, _, closed_lockers) = point(&app, 1).await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    wire(&app, closed_point, &format!("http://{closed_port}")).await;
    let _workers = workers(&app);

    let started = std::time::Instant::now();
    let ids = issue(&app, &[silent_lockers[0], closed_lockers[0]]).await;
    assert!(all_in(&app, &ids, "failed", Duration::from_secs(15)).await, "{:?}", command(&app, ids[0]).await);
    assert!(started.elapsed() < Duration::from_secs(8), "failed about when the window closed");
    let (_, attempts, error, _) = command(&app, ids[0]).await;
    assert!(attempts > 1, "timeouts were retried");
    assert!(error.as_deref().is_some_and(|e| e.contains("timed out") && e.contains("retry window")), "{error:?}");
    assert_eq!(silent.pulses(ids[0]), 1, "the resends carried the same key: one pulse");
    let (_, attempts, error, _) = command(&app, ids[1]).await;
    assert!(attempts > 1, "refused connections were retried");
    assert!(error.as_deref().is_some_and(|e| e.contains("could not connect")), "{error:?}");
    // Nothing is left to run: the jobs ended with their commands.
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = 'door' AND state IN ('ready', 'running')")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(live, 0);
}

#[tokio::test]
async fn a_worker_killed_mid_way_leaves_every_command_acked_and_pulsed_exactly_once_after_the_restart() {
    let app = app(&["--door-retry-window-secs=120"]).await;
    let (point, token, lockers) = point(&app, 40).await;
    let fake = FakeController::start(&token, None).await;
    // Slow answers (after the pulse): the kill lands while opens are pulsed but not yet recorded.
    fake.set_faults(Faults { latency: Duration::from_millis(400), ..Faults::default() });
    wire(&app, point, &fake.url).await;
    let mut doomed = std::process::Command::new(env!("CARGO_BIN_EXE_lockers-api"))
        .arg("--with-workers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.config.database_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("DOOR_DRIVER", "http")
        .env("WORKER_QUEUES", "door=4")
        .env("SCHEDULER", "false")
        .env("JOB_RESCUE_AFTER_SECS", "2")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    let ids = issue(&app, &lockers).await;
    let running = eventually(Duration::from_secs(30), || async { fake.all_pulses().len() >= 8 }).await;
    if !running {
        doomed.kill().ok();
    }
    assert!(running, "the doomed worker never sent");
    let killed = std::process::Command::new("kill").args(["-KILL", &doomed.id().to_string()]).status().unwrap();
    assert!(killed.success());
    doomed.wait().unwrap();
    let acked_before: i64 = sqlx::query_scalar("SELECT count(*) FROM door_commands WHERE status = 'acked'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(acked_before < ids.len() as i64, "killed mid-way");

    fake.set_faults(Faults::default());
    let _restarted = workers(&app);
    assert!(
        all_in(&app, &ids, "acked", Duration::from_secs(60)).await,
        "not every command was acked after the restart"
    );
    for id in &ids {
        assert_eq!(fake.pulses(*id), 1, "command {id} pulsed exactly once");
    }
    let requests = fake.requests().len();
    assert!(requests > ids.len(), "opens cut short by the kill were sent again, with the same key ({requests})");
}

#[tokio::test]
async fn the_http_driver_trusts_a_private_ca_from_configuration_and_no_other() {
    let ca = TestCa::new("Operator CA");
    let ca_file = ca.write_pem();
    let trusted = app(&[&format!("--controller-ca-file={}", ca_file.display())]).await;
    let (point_id, token, lockers) = point(&trusted, 1).await;
    let fake = FakeController::start_tls(&token, None, &ca).await;
    assert!(fake.url.starts_with("https://"));
    wire(&trusted, point_id, &fake.url).await;
    let workers_a = workers(&trusted);
    let ids = issue(&trusted, &lockers).await;
    assert!(all_in(&trusted, &ids, "acked", Duration::from_secs(10)).await, "{:?}", command(&trusted, ids[0]).await);
    assert_eq!(fake.pulses(ids[0]), 1);
    workers_a.stop().await;

    let other_file = TestCa::new("Someone else's CA").write_pem();
    let untrusting =
        app(&[&format!("--controller-ca-file={}", other_file.display()), "--door-retry-window-secs=2"]).await;
    let (point_id, token, lockers) = point(&untrusting, 1).await;
    let fake = FakeController::start_tls(&token, None, &ca).await;
    wire(&untrusting, point_id, &fake.url).await;
    let _workers = workers(&untrusting);
    let ids = issue(&untrusting, &lockers).await;
    assert!(all_in(&untrusting, &ids, "failed", Duration::from_secs(10)).await);
    let (_, _, error, _) = command(&untrusting, ids[0]).await;
    assert!(error.as_deref().is_some_and(|e| e.to_lowercase().contains("certificate")), "{error:?}");
    assert!(fake.requests().is_empty(), "no request crossed an untrusted connection");
    std::fs::remove_file(ca_file).ok();
    std::fs::remove_file(other_file).ok();
}

#[tokio::test]
async fn a_rotated_token_is_refused_inbound_and_the_new_one_is_presented_outbound() {
    let app = app(&[]).await;
    let (point, old, lockers) = point(&app, 1).await;
    let key = ControllerKey::from_config(&app.config);
    let new = places::rotate_controller_token(&mut app.pool.acquire().await.unwrap(), &Actor::operator(), &key, point)
        .await
        .unwrap();
    let new = new.expose().to_owned();
    assert_ne!(new, old);

    // Inbound: the controller's events with the old token are refused, the new one accepted.
    let event = serde_json::json!({ "door_no": null, "event": "heartbeat", "command_id": null });
    let refused = app.post_as("/api/v1/controller/events", &old, &event).await;
    assert_eq!(refused.status(), 401);
    let accepted = app.post_as("/api/v1/controller/events", &new, &event).await;
    assert_eq!(accepted.status(), 204);

    // Outbound: a controller that knows only the new token opens the door.
    let fake = FakeController::start(&new, None).await;
    wire(&app, point, &fake.url).await;
    let _workers = workers(&app);
    let ids = issue(&app, &lockers).await;
    assert!(all_in(&app, &ids, "acked", Duration::from_secs(10)).await, "{:?}", command(&app, ids[0]).await);
    assert_eq!(fake.requests()[0].authorization.as_deref(), Some(format!("Bearer {new}").as_str()));
    let generation: i32 = sqlx::query_scalar("SELECT controller_token_generation FROM locker_points WHERE id = $1")
        .bind(point)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(generation, 1);
}

#[tokio::test]
async fn the_simulator_opens_doors_reports_them_closed_and_sends_heartbeats() {
    let app = app(&[]).await;
    let (point, token, lockers) = point(&app, 2).await;
    let mut simulator = std::process::Command::new(env!("CARGO_BIN_EXE_lockers-admin"))
        .args(["simulate-controller", "--listen", "127.0.0.1:0", "--api", &app.url(""), "--token", &token])
        .args(["--point-id", &point.to_string(), "--heartbeat-secs", "1", "--close-after-ms", "100"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = simulator_url(&mut simulator).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    wire(&app, point, &url).await;
    let _workers = workers(&app);

    let ids = issue(&app, &lockers[1..2]).await;
    let closed = eventually(Duration::from_secs(10), || async { command(&app, ids[0]).await.3 }).await;
    let state = command(&app, ids[0]).await;
    let heartbeat: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_heartbeat_at FROM locker_points WHERE id = $1")
            .bind(point)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    simulator.kill().ok();
    simulator.wait().ok();
    assert!(closed, "the simulator's door_closed never arrived: {state:?}");
    assert_eq!(state.0, "acked");
    assert!(heartbeat.is_some(), "the simulator's heartbeats mark the point");
}

/// A pickup still being retried when a force-clear emptied the locker (and
/// the next sender's parcel went in) must never be sent: it becomes `void`.
#[tokio::test]
async fn an_open_its_item_no_longer_waits_for_is_void_and_never_sent() {
    let app = TestApp::spawn().await;
    let spot = app.spot("Void Hub", 2).await;
    let sender = app.sender(None).await;
    let to = crate::client::pickup::Receiver { phone: None, email: Some("receiver@example.com") };
    let item = app.stored_item_since(&sender, spot.lockers[0], to, chrono::Duration::minutes(1)).await;
    let mut tx = app.pool.begin().await.unwrap();
    let pickup = doors::issue(&mut tx, spot.lockers[0], Some(item), Reason::Pickup).await.unwrap();
    let waiting = doors::issue(&mut tx, spot.lockers[1], None, Reason::ForceClear).await.unwrap();
    tx.commit().await.unwrap();

    // While the item still waits, an attempt begins as usual.
    let first = doors::begin_attempt(&app.pool, pickup).await.unwrap();
    assert!(first.is_some(), "the pickup of a stored item is sent");
    // A force-clear took the item out; a retry of the pickup must not open the door.
    sqlx::query("UPDATE items SET status = 'force_removed', closed_at = now() WHERE id = $1")
        .bind(item)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(doors::begin_attempt(&app.pool, pickup).await.unwrap().is_none(), "a void command is not sent");
    let (status, attempts, error, _) = command(&app, pickup).await;
    assert_eq!((status.as_str(), attempts), ("void", 1), "{error:?}");
    assert!(doors::begin_attempt(&app.pool, pickup).await.unwrap().is_none(), "void is final");
    // Item-less commands (a force-clear of an empty locker) are not judged by an item.
    assert!(doors::begin_attempt(&app.pool, waiting).await.unwrap().is_some());
}
