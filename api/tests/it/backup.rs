//! ops/backup: the backup script's dump of a database with data restores into
//! an empty database with every table's rows, and the restore script refuses
//! a database that is not empty.

use std::path::PathBuf;
use std::process::Command;

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::client::exchange::site;
use crate::harness::{SERVER_URL, TestApp, drop_database};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/backup").join(name)
}

/// Rows per table of the public schema, by name.
async fn row_counts(url: &str) -> Vec<(String, i64)> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut counts = Vec::new();
    for table in tables {
        let sql = format!("SELECT count(*) FROM {}", lockers_core::db::quote_ident(&table));
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap();
        counts.push((table, n));
    }
    conn.close().await.ok();
    counts
}

/// An empty database (not cloned from the template), dropped with the guard.
struct Empty(String);

impl Drop for Empty {
    fn drop(&mut self) {
        drop_database(&self.0);
    }
}

async fn empty_database() -> Empty {
    let name = format!("lockers_t_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&format!("{SERVER_URL}/postgres")).await.unwrap();
    let sql = format!("CREATE DATABASE {} TEMPLATE template0", lockers_core::db::quote_ident(&name));
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    Empty(name)
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_database_with_the_same_row_counts() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.user_with_role("admin").await;
    site(&app, &admin, &["S", "M", "L"]).await;
    site(&app, &admin, &["M"]).await;
    let source = app.config.database_url.clone();
    let before = row_counts(&source).await;
    let with_rows = |counts: &[(String, i64)]| counts.iter().filter(|(_, n)| *n > 0).count();
    assert!(with_rows(&before) >= 6, "states, cities, points, lockers, users, audit log: {before:?}");

    let dir = std::env::temp_dir().join(format!("lockers-backup-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("test.dump");
    let backup = Command::new("bash").arg(script("backup.sh")).arg(&source).arg(&dump).output().unwrap();
    assert!(backup.status.success(), "backup.sh: {}", String::from_utf8_lossy(&backup.stderr));
    assert!(dump.metadata().unwrap().len() > 1000, "a dump with data");
    assert!(!dir.join("test.dump.partial").exists());

    let target = empty_database().await;
    let target_url = format!("{SERVER_URL}/{}", target.0);
    let restore = Command::new("bash").arg(script("restore.sh")).arg(&dump).arg(&target_url).output().unwrap();
    assert!(restore.status.success(), "restore.sh: {}", String::from_utf8_lossy(&restore.stderr));
    assert_eq!(row_counts(&target_url).await, before, "every table, every row");

    // A second restore into the now full database is refused, changing nothing.
    let again = Command::new("bash").arg(script("restore.sh")).arg(&dump).arg(&target_url).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("restore into an empty one"));
    assert_eq!(row_counts(&target_url).await, before);
    std::fs::remove_dir_all(&dir).ok();
}
