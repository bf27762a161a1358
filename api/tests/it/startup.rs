use std::process::{Command, Stdio};
use std::time::Duration;

use lockers_core::db;
use uuid::Uuid;

use crate::harness::{SERVER_URL, config, drop_database, eventually};

async fn database_exists(name: &str) -> bool {
    let pool = db::connect(&format!("{SERVER_URL}/postgres"), 2).await.unwrap();
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    exists
}

#[tokio::test]
async fn a_missing_database_is_created_and_migrated_and_a_second_start_changes_nothing() {
    let name = format!("lockers_t_{}", Uuid::new_v4().simple());
    assert!(!database_exists(&name).await);
    let config = config(&name, &[]);

    let pool = db::connect_and_migrate(&config).await.unwrap();
    assert!(database_exists(&name).await);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables
         WHERE table_name IN ('users', 'items', 'charges', 'audit_log', 'jobs') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tables, ["public.audit_log", "public.charges", "public.items", "public.jobs", "public.users"]);
    pool.close().await;

    // Starting again finds everything in place.
    let pool = db::connect_and_migrate(&config).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(applied, db::MIGRATOR.iter().count() as i64);
    pool.close().await;
    drop_database(&name);
}

/// The README's first command, as a real process: it creates the database,
/// answers /health and /ready, and exits cleanly on SIGTERM.
#[tokio::test]
async fn lockers_api_with_workers_starts_on_a_new_database_and_stops_on_sigterm() {
    let name = format!("lockers_t_{}", Uuid::new_v4().simple());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockers-api"))
        .arg("--with-workers")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", format!("{SERVER_URL}/{name}"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(30), || async {
        let health = http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status() == 200);
        let ready = http.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200);
        health && ready
    })
    .await;
    assert!(ready, "lockers-api did not become ready");
    assert!(database_exists(&name).await);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let exited = eventually(Duration::from_secs(20), || {
        let status = child.try_wait().unwrap();
        async move { status.is_some() }
    })
    .await;
    if !exited {
        child.kill().ok();
    }
    assert!(exited, "lockers-api did not stop within 20 s of SIGTERM");
    assert!(child.wait().unwrap().success(), "graceful shutdown exits 0");
    drop_database(&name);
}
