//! The sweep: which rows it removes, and that each of its statements finds
//! them through an index rather than by reading the whole table.

use std::time::Duration;

use lockers_core::jobs::{self, Queue, Sweep};
use sqlx::Connection;
use uuid::Uuid;

use crate::harness::{TestApp, eventually};

#[tokio::test]
async fn every_sweep_statement_is_served_by_an_index() {
    let app = TestApp::spawn().await;
    for (statement, index) in lockers_core::sweep::INDEXED_STATEMENTS {
        // The generic plan (the one for any parameter values), with sequential
        // scans forbidden: with a few rows they are cheapest, and we want to
        // see that an index can serve the statement, not what these rows cost.
        let mut tx = app.pool.begin().await.unwrap();
        sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
        sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut *tx).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE swept AS {statement}"))).execute(&mut *tx).await.unwrap();
        let params = (1..=9).filter(|n| statement.contains(&format!("${n}"))).count();
        let explain = format!("EXPLAIN EXECUTE swept({})", vec!["NULL"; params].join(", "));
        let plan = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *tx).await.unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{statement}\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{statement}\n{plan}");
        // Prepared statements outlive transactions.
        sqlx::raw_sql("DEALLOCATE swept").execute(&mut *tx).await.unwrap();
        tx.rollback().await.unwrap();
    }
}

#[tokio::test]
async fn the_sweep_deletes_finished_notifications_after_the_retention_and_keeps_pending_ones() {
    let week = "604800";
    let app = TestApp::spawn_with(&["--scheduler=false", "--notification-retention-secs", week]).await;
    let mut rows = Vec::new();
    for (status, days_old) in [("sent", 8), ("failed", 8), ("pending", 8), ("sent", 6), ("failed", 6)] {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO notifications (id, channel, recipient, kind, body, status, created_at)
             VALUES ($1, 'email', 'asha@example.com', 'test', 'hello', $2, now() - make_interval(days => $3))",
        )
        .bind(id)
        .bind(status)
        .bind(days_old)
        .execute(&app.pool)
        .await
        .unwrap();
        rows.push((id, status, days_old));
    }
    let workers = app.start_workers(None);
    let mut tx = app.pool.begin().await.unwrap();
    jobs::enqueue(&mut tx, Queue::Sweep, &Sweep { at: chrono::Utc::now().timestamp() }).await.unwrap();
    tx.commit().await.unwrap();

    let expected: Vec<Uuid> =
        rows.iter().filter(|(_, status, days)| *status == "pending" || *days < 7).map(|(id, _, _)| *id).collect();
    let swept = eventually(Duration::from_secs(10), || async {
        let left: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM notifications ORDER BY id").fetch_all(&app.pool).await.unwrap();
        left == expected
    })
    .await;
    workers.stop().await;
    assert!(swept, "finished rows older than a week are gone; pending and younger ones stay");
}

#[tokio::test]
async fn lockers_admin_sweep_run_sweeps_now_and_is_audited_as_the_operator() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    for expired_days_ago in [2, 0] {
        sqlx::query(
            "INSERT INTO one_time_codes (id, purpose, contact, code_hash, expires_at)
             VALUES ($1, 'login', '+919876543210', '\\x00', now() - make_interval(days => $2))",
        )
        .bind(Uuid::now_v7())
        .bind(expired_days_ago)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    let out = crate::admin_cli::admin(&app, &["sweep", "run"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("swept: 1 codes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM one_time_codes").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 1, "the code expired two days ago is gone, the recent one kept");
    let (actor, codes): (Option<Uuid>, Option<i64>) = sqlx::query_as(
        "SELECT actor_id, (after->>'codes')::bigint FROM audit_log WHERE action = 'sweep.run' AND target_type = 'sweep'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((actor, codes), (None, Some(1)), "the operator's sweep is audited with what it removed");
}

#[tokio::test]
async fn the_scheduled_sweep_does_not_write_to_the_audit_log() {
    let app = TestApp::spawn_with(&["--scheduler=false"]).await;
    let workers = app.start_workers(None);
    let mut tx = app.pool.begin().await.unwrap();
    jobs::enqueue(&mut tx, Queue::Sweep, &Sweep { at: chrono::Utc::now().timestamp() }).await.unwrap();
    tx.commit().await.unwrap();
    let swept = eventually(Duration::from_secs(10), || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE queue = 'sweep' AND state = 'completed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        done == 1
    })
    .await;
    workers.stop().await;
    assert!(swept, "the sweep ran");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&app.pool).await.unwrap();
    assert_eq!(audited, 0, "a sweep every minute would bury the audit log");
}

#[tokio::test]
async fn a_finished_test_leaves_neither_its_database_nor_its_redis_keys_behind() {
    let app = TestApp::spawn().await;
    // A public read writes the per-IP counter under the test's Redis prefix.
    assert_eq!(app.get("/api/v1/states").await.status(), 200);
    let pattern = format!("{}*", app.config.redis_key_prefix);
    let client = redis::Client::open(crate::harness::REDIS_URL).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
    assert!(!keys.is_empty(), "the limiter wrote under {pattern}");
    let database = app.database.clone();
    drop(app);
    let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query_async(&mut redis).await.unwrap();
    assert!(keys.is_empty(), "left behind: {keys:?}");
    let mut conn = sqlx::PgConnection::connect(&format!("{}/postgres", crate::harness::SERVER_URL)).await.unwrap();
    let left: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&database)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!left, "database {database} left behind");
}
