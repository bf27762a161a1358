//! `lockers-admin`, run as the operator would.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::TestApp;

pub(crate) fn admin(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockers-admin"))
        .args(args)
        .env("DATABASE_URL", &app.config.database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn create_admin_stores_an_argon2id_hash_and_audits_it() {
    let app = TestApp::spawn().await;
    let out = admin(&app, &["create-admin", "--email", "Ops@Example.com", "--name", "Ops"], "a long passphrase\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (role, hash, verified): (String, String, bool) = sqlx::query_as(
        "SELECT role, password_hash, email_verified_at IS NOT NULL FROM users WHERE email = 'ops@example.com'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(role, "admin");
    assert!(verified);
    assert!(lockers_core::accounts::password::verify("a long passphrase", &hash));
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'user.create_admin'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn create_admin_refuses_a_short_password_and_a_bad_email() {
    let app = TestApp::spawn().await;
    let out = admin(&app, &["create-admin", "--email", "ops@example.com", "--name", "Ops"], "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
    let out = admin(&app, &["create-admin", "--email", "not-an-email", "--name", "Ops"], "a long passphrase\n");
    assert!(!out.status.success());
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn seed_demo_builds_a_searchable_network_once() {
    let app = TestApp::spawn().await;
    let out = admin(&app, &["seed-demo"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM states), (SELECT count(*) FROM cities),
                (SELECT count(*) FROM locker_points), (SELECT count(*) FROM lockers)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(counts, (5, 7, 10, 120));
    let sizes: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT size FROM lockers ORDER BY 1").fetch_all(&app.pool).await.unwrap();
    assert_eq!(sizes, ["L", "M", "S", "XL"]);
    // Seeded by another process: search hears of it by NOTIFY.
    let found = crate::harness::eventually(std::time::Duration::from_secs(5), || async {
        let found: serde_json::Value = app.get("/api/v1/lockers?q=cafe%20ourem").await.json().await.unwrap();
        found["total"] == 12
    })
    .await;
    assert!(found, "the seeded lockers never reached search");

    let again = admin(&app, &["seed-demo"], "");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing seeded"));
    let lockers: i64 = sqlx::query_scalar("SELECT count(*) FROM lockers").fetch_one(&app.pool).await.unwrap();
    assert_eq!(lockers, 120);
}

#[tokio::test]
async fn jobs_stats_shows_each_queues_depth_oldest_wait_running_retrying_and_dead() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    // Queue `notify`: two due (the oldest due for 90 s), one first run in the
    // future, one waiting out a retry, one running, one dead; `door`: one dead.
    sqlx::query(
        "INSERT INTO jobs (queue, payload, state, attempts, max_attempts, run_at) VALUES
             ('notify', '{}', 'ready', 0, 10, now() - interval '90 seconds'),
             ('notify', '{}', 'ready', 1, 10, now() - interval '5 seconds'),
             ('notify', '{}', 'ready', 0, 10, now() + interval '1 hour'),
             ('notify', '{}', 'ready', 2, 10, now() + interval '30 seconds'),
             ('notify', '{}', 'running', 1, 10, now() - interval '1 second'),
             ('notify', '{}', 'dead', 10, 10, now() - interval '1 day'),
             ('door', '{}', 'dead', 40, 40, now() - interval '1 day')",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let out = admin(&app, &["jobs", "stats"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    let row = |queue: &str| -> Vec<String> {
        let line = listing.lines().find(|l| l.split_whitespace().next() == Some(queue)).unwrap_or_default();
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    let header: Vec<&str> = listing.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["queue", "ready", "scheduled", "running", "retrying", "dead", "oldest_ready_s"]);
    let notify = row("notify");
    assert_eq!(notify[..5], ["2", "1", "1", "1", "1"], "{listing}");
    let oldest: f64 = notify[5].parse().unwrap();
    assert!((90.0..3600.0).contains(&oldest), "the oldest due job waited 90 s and more: {listing}");
    assert_eq!(row("door"), ["0", "0", "0", "0", "1", "-"], "{listing}");
    // Empty queues are listed too, with zeros, in the queues' order.
    for queue in ["otp", "billing", "sweep"] {
        assert_eq!(row(queue), ["0", "0", "0", "0", "0", "-"], "{listing}");
    }
    let order: Vec<&str> = listing.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(order, ["otp", "notify", "door", "billing", "sweep"], "{listing}");
}

#[tokio::test]
async fn jobs_failed_lists_dead_jobs_and_jobs_retry_queues_one_again() {
    let app = TestApp::spawn().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (queue, payload, state, attempts, max_attempts, last_error, finished_at)
         VALUES ('door', '{}', 'dead', 20, 20, 'controller answered 503', now()) RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();

    let out = admin(&app, &["jobs", "failed"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout);
    let row = listing.lines().find(|l| l.starts_with(&id.to_string())).unwrap_or_default();
    assert!(row.contains("door") && row.contains("controller answered 503"), "{listing}");

    let out = admin(&app, &["jobs", "retry", &id.to_string()], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (state, attempts): (String, i32) =
        sqlx::query_as("SELECT state, attempts FROM jobs WHERE id = $1").bind(id).fetch_one(&app.pool).await.unwrap();
    assert_eq!((state.as_str(), attempts), ("ready", 0));

    let out = admin(&app, &["jobs", "retry", &id.to_string()], "");
    assert!(!out.status.success(), "a job that is not dead is not retried");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no dead job"));
}

#[tokio::test]
async fn create_admin_on_an_account_a_stranger_registered_leaves_none_of_the_strangers_credentials_working() {
    use serde_json::{Value, json};
    let stack = crate::harness::Stack::spawn(&[]).await;
    let (email, stranger_password) = ("boss@company.example", "the strangers own words");
    // The stranger registers the boss's address first, with a phone, and (say, through
    // an old alias forwarding the boss's mail) proves it and logs in.
    let body =
        json!({ "name": "Not the boss", "email": email, "phone": "+919855550123", "password": stranger_password });
    assert_eq!(stack.post("/api/v1/auth/signup", &body).await.status(), 201);
    let code = stack.email_code(email, 1).await;
    let verify = json!({ "identifier": email, "code": code, "password": stranger_password });
    assert_eq!(stack.post("/api/v1/auth/verify", &verify).await.status(), 200);
    // ... and proves the phone too (set here directly; how it is proven is not the point).
    sqlx::query("UPDATE users SET phone_verified_at = now() WHERE email = $1")
        .bind(email)
        .execute(&stack.pool)
        .await
        .unwrap();
    let stack = &stack;
    let login = |password: &str| {
        let body = json!({ "identifier": email, "password": password });
        async move { stack.post("/api/v1/auth/login", &body).await }
    };
    let tokens: Value = login(stranger_password).await.json().await.unwrap();
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());

    let out = admin(&stack.app, &["create-admin", "--email", email, "--name", "Boss"], "the operators passphrase\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already had an account"));

    assert_eq!(login(stranger_password).await.status(), 401, "the stranger's password is gone");
    let refreshed = stack.post("/api/v1/auth/refresh", &json!({ "refresh_token": refresh })).await;
    assert_eq!(refreshed.status(), 401, "the stranger's session is gone");
    assert_eq!(stack.get_as("/api/v1/auth/me", access).await.status(), 401, "the stranger's access token is refused");

    let boss = login("the operators passphrase").await;
    assert_eq!(boss.status(), 200);
    let boss: Value = boss.json().await.unwrap();
    let me: Value = stack.get_as("/api/v1/auth/me", boss["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(
        (me["role"].as_str(), me["name"].as_str(), me["email_verified"].as_bool()),
        (Some("admin"), Some("Boss"), Some(true))
    );
    assert!(me["phone"].is_null(), "the phone the stranger proved is dropped: {me}");
    let sms_before = stack.twilio.messages().len();
    let by_phone = stack.post("/api/v1/auth/otp/request", &json!({ "identifier": "+919855550123" })).await;
    assert_eq!(by_phone.status(), 202);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(stack.twilio.messages().len(), sms_before, "the stranger's phone no longer reaches the account");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'user.promote_admin'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn create_admin_on_an_address_a_stranger_pre_registered_gives_the_account_to_the_operator() {
    use serde_json::json;
    let app = TestApp::spawn().await;
    let email = "boss@company.example";
    let body = json!({ "name": "Not the boss", "email": email, "password": "the strangers own words" });
    assert_eq!(app.post("/api/v1/auth/signup", &body).await.status(), 201);

    let out = admin(&app, &["create-admin", "--email", email, "--name", "Boss"], "the operators passphrase\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let login = |password: &'static str| {
        let body = json!({ "identifier": email, "password": password });
        let app = &app;
        async move { app.post("/api/v1/auth/login", &body).await.status() }
    };
    assert_eq!(login("the strangers own words").await, 401);
    assert_eq!(login("the operators passphrase").await, 200, "the operator vouched for the email");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(users, 1);
}
