//! Connecting to PostgreSQL: the database is created if missing, then our
//! migrations (the job queue's table included) are applied.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::Config;

/// Our migrations, embedded at build time from `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Creates the database if needed, connects a pool and applies every migration.
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<PgPool> {
    ensure_database_exists(&config.database_url).await?;
    let pool = connect_configured(config).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// The pool of a process as its configuration describes it.
pub async fn connect_configured(config: &Config) -> anyhow::Result<PgPool> {
    connect_with_timeout(&config.database_url, config.database_max_connections, config.database_acquire_timeout).await
}

/// A pool over an existing database (5 s to get a connection: tools and tests).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_with_timeout(url, max_connections, Duration::from_secs(5)).await
}

/// A pool whose callers wait at most `acquire_timeout` for a connection: while
/// the database is unreachable a request fails within that time (and the
/// intake answers 503) instead of queueing behind a dead server.
pub async fn connect_with_timeout(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("DATABASE_URL is not a valid PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_with(options.application_name("lockers"))
        .await
        .context("Failed to connect to PostgreSQL")
}

/// Warns when this process alone may open more connections than the server
/// accepts (`max_connections` less the superuser reserve): past that, requests
/// and handlers wait for connections that never come and fail with "pool
/// timed out", which looks like a slow database rather than a setting. Other
/// processes on the same server count against the limit too.
pub async fn warn_if_over_server_limit(pool: &PgPool, wanted: u32, what: &str) {
    let available: Result<i32, sqlx::Error> = sqlx::query_scalar(
        "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int",
    )
    .fetch_one(pool)
    .await;
    match available {
        Ok(available) if i64::from(wanted) > i64::from(available) => tracing::warn!(
            wanted,
            available,
            "{what} may open {wanted} database connections but the server accepts {available}: \
             lower DATABASE_MAX_CONNECTIONS or WORKER_QUEUES, or raise PostgreSQL's max_connections"
        ),
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "could not read the server's connection limit"),
    }
}

/// Applies our migrations; safe to run concurrently.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("Failed to apply database migrations")
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn ensure_database_exists(url: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = url.parse().context("DATABASE_URL is not a valid PostgreSQL URL")?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    // The maintenance database every cluster has.
    let mut conn = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("Failed to connect to PostgreSQL (maintenance database `postgres`)")?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .context("Failed to look up the database")?;
    if !exists {
        let sql = format!("CREATE DATABASE {}", quote_ident(&name));
        match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our CREATE.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e).with_context(|| format!("Failed to create database {name}")),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// Liveness of the database, for `/ready`.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// Whether `error` means the database cannot be reached right now (down,
/// restarting, refusing connections, a connection lost mid-query, or no
/// connection free within the acquire timeout), as opposed to a fault in the
/// request or the code: callers answer "try again later", not "internal error".
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: shutting down, crashed,
            // starting up; 53300: too many connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_and_timeouts_count_as_unavailable_but_bad_queries_do_not() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(quote_ident("lockers"), "\"lockers\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

/// A database failure and the operation it interrupted, so a 500 logs which
/// operation failed and why, not only "database error".
#[derive(Debug, thiserror::Error)]
#[error("failed to {operation}")]
pub struct DbError {
    pub operation: &'static str,
    #[source]
    pub source: sqlx::Error,
}

impl DbError {
    /// The constraint a write ran into, by name: the one way use cases tell
    /// violations apart (never by SQLSTATE alone, so a new index cannot be
    /// mistaken for an old one).
    pub fn constraint(&self) -> Option<&str> {
        self.source.as_database_error().and_then(|e| e.constraint())
    }

    /// See [`is_unavailable`].
    pub fn is_unavailable(&self) -> bool {
        is_unavailable(&self.source)
    }
}

/// Names the operation a database call performs: `.during("rename a state")`.
pub trait During<T> {
    fn during(self, operation: &'static str) -> Result<T, DbError>;
}

impl<T> During<T> for Result<T, sqlx::Error> {
    fn during(self, operation: &'static str) -> Result<T, DbError> {
        self.map_err(|source| DbError { operation, source })
    }
}
