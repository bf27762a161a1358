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
    let pool = connect(&config.database_url, config.database_max_connections).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// A pool over an existing database.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("DATABASE_URL is not a valid PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.application_name("lockers"))
        .await
        .context("Failed to connect to PostgreSQL")
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

/// Quotes an SQL identifier (doubling embedded quotes).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(quote_ident("lockers"), "\"lockers\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
