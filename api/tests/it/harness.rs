//! One way to run the real system in a test: the app on port 0 against a fresh
//! database (cloned from a migrated template), Redis keys under a per-test
//! prefix, and the worker runtime on demand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lockers_api::Application;
use lockers_core::config::Config;
use lockers_core::db;
use lockers_workers::Runtime;
use lockers_workers::providers::Providers;

use crate::fakes::smtp::FakeSmtp;
use crate::fakes::twilio::FakeTwilio;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A migrated database that each test clones (much faster than migrating).
static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The template of this migration set: named by a hash of the migrations, so
/// every run with the same migrations reuses one template (runs leave no new
/// database behind) and a run with other migrations gets its own. Built under
/// a name of its own and renamed when complete, under an advisory lock, so
/// concurrent runs neither race nor clone a half-migrated template.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            // The 9999999999 stands where older harnesses read a creation time
            // and dropped templates an hour old: they leave this one alone.
            let name = format!("lockers_tpl_9999999999_{}", migrations_hash());
            let mut conn = PgConnection::connect(&format!("{SERVER_URL}/postgres")).await.expect("connect to postgres");
            sqlx::query("SELECT pg_advisory_lock(hashtext('lockers test template'))")
                .execute(&mut conn)
                .await
                .expect("lock the template");
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut conn)
                .await
                .expect("look for the template");
            if !exists {
                let building = format!("{name}_b");
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db::quote_ident(&building));
                sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await.expect("drop a half-built template");
                let url = format!("{SERVER_URL}/{building}");
                db::ensure_database_exists(&url).await.expect("create template database");
                let pool = db::connect(&url, 2).await.expect("connect template");
                db::migrate(&pool).await.expect("migrate template");
                pool.close().await;
                let rename =
                    format!("ALTER DATABASE {} RENAME TO {}", db::quote_ident(&building), db::quote_ident(&name));
                sqlx::query(sqlx::AssertSqlSafe(rename)).execute(&mut conn).await.expect("complete the template");
            }
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
            let used = format!("COMMENT ON DATABASE {} IS 'used {now}'", db::quote_ident(&name));
            sqlx::query(sqlx::AssertSqlSafe(used)).execute(&mut conn).await.expect("mark the template used");
            drop_stale_templates(&mut conn, &name, now).await;
            sqlx::query("SELECT pg_advisory_unlock(hashtext('lockers test template'))").execute(&mut conn).await.ok();
            conn.close().await.ok();
            name
        })
        .await
}

/// The first 16 hex digits of a SHA-256 over every migration file, in order.
fn migrations_hash() -> String {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).expect("the migrations folder").flatten().map(|e| e.path()).collect();
    files.sort();
    let mut hash = Sha256::new();
    for file in files {
        hash.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        hash.update(std::fs::read(&file).expect("a migration"));
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Templates of other migration sets that no run used for an hour (a run
/// marks its template when it starts; one may still be cloning from its own).
async fn drop_stale_templates(conn: &mut PgConnection, keep: &str, now: u64) {
    let templates: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname LIKE 'lockers\\_tpl\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for (name, comment) in templates {
        // Older runs named templates `lockers_tpl_<created>_<uuid>` and left no comment.
        let used = comment
            .and_then(|c| c.strip_prefix("used ").and_then(|t| t.parse::<u64>().ok()))
            .or_else(|| name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok()).filter(|t| *t < 9_999_999_999))
            .unwrap_or(0);
        if name == keep || now.saturating_sub(used) < 3600 {
            continue;
        }
        let sql = format!("DROP DATABASE IF EXISTS {}", db::quote_ident(&name));
        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await;
    }
}

/// A new, migrated database for one test.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("lockers_t_{}", Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&format!("{SERVER_URL}/postgres")).await.expect("connect to postgres");
    let sql = format!("CREATE DATABASE {} TEMPLATE {}", db::quote_ident(&name), db::quote_ident(template));
    let mut tries = 0;
    // Cloning fails while another session is briefly connected to the template.
    while let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut conn).await {
        tries += 1;
        assert!(tries < 50, "could not clone the template database: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.close().await.ok();
    name
}

/// Drops a test database, closing whatever still holds it, and the Redis
/// keys written under its prefix (see [`config_args`]).
pub fn drop_database(name: &str) {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db::quote_ident(name));
    let pattern = format!("test:{name}:*");
    // Drop runs outside any async context we could await in: use a thread of its own.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        rt.block_on(async {
            delete_redis_keys(&pattern).await;
            let mut conn = PgConnection::connect(&format!("{SERVER_URL}/postgres")).await.ok()?;
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.ok()
        })
    })
    .join();
}

/// Deletes every Redis key matching `pattern` (a test's prefix).
async fn delete_redis_keys(pattern: &str) {
    let Ok(client) = redis::Client::open(REDIS_URL) else { return };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let keys: Vec<String> = {
        let Ok(mut iter) = redis::AsyncCommands::scan_match::<_, String>(&mut conn, pattern).await else { return };
        let mut keys = Vec::new();
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            keys.extend(key.ok());
        }
        keys
    };
    if !keys.is_empty() {
        let _: Result<(), _> = redis::AsyncCommands::del(&mut conn, keys).await;
    }
}

/// Test configuration: development defaults, a given database, port 0.
pub fn config(database: &str, extra: &[&str]) -> Config {
    Config::try_parse_from(config_args(database, extra))
        .expect("test config parses")
        .validated()
        .expect("test config is valid")
}

/// The command line of [`config`] (program name first).
pub fn config_args(database: &str, extra: &[&str]) -> Vec<String> {
    let url = format!("{SERVER_URL}/{database}");
    let prefix = format!("test:{database}:");
    let mut args = vec![
        "lockers",
        "--database-url",
        &url,
        "--listen-addr",
        "127.0.0.1:0",
        "--redis-url",
        REDIS_URL,
        "--redis-key-prefix",
        &prefix,
        "--database-max-connections",
        "8",
        "--shutdown-timeout",
        "10",
        // Tests inspect finished jobs; production deletes them at once by default.
        "--job-retention-secs",
        "3600",
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(str::to_owned).collect()
}

/// The same settings as environment variables, for a child process running a
/// shipped binary: each `--flag value` or `--flag=value` becomes the variable
/// the configuration reads it from.
pub fn config_env(args: &[String]) -> Vec<(String, String)> {
    use clap::CommandFactory;
    let command = Config::command();
    let env_of = |long: &str| {
        command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_else(|| panic!("--{long} has no environment variable"))
    };
    let mut out = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let flag = arg.strip_prefix("--").unwrap_or_else(|| panic!("`{arg}` is not a flag"));
        let (long, value) = match flag.split_once('=') {
            Some((long, value)) => (long, value.to_owned()),
            None => (flag, rest.next().cloned().unwrap_or_else(|| panic!("--{flag} has no value"))),
        };
        out.push((env_of(long), value));
    }
    out
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub database: String,
    shutdown: CancellationToken,
}

impl TestApp {
    /// The app on a fresh database, without workers.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// The app with extra configuration flags (e.g. `--sms-provider twilio`).
    pub async fn spawn_with(extra: &[&str]) -> TestApp {
        let database = fresh_database().await;
        let config = Arc::new(config(&database, extra));
        let pool = db::connect(&config.database_url, config.database_max_connections).await.expect("connect");
        Self::serve(config, pool, database).await
    }

    /// Serves `pool` (which may point anywhere) as the app's database.
    pub async fn serve(config: Arc<Config>, pool: PgPool, database: String) -> TestApp {
        let app = Application::build(config.clone(), pool.clone()).await.expect("build app");
        let addr = app.local_addr().expect("bound address");
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        TestApp { addr, http, pool, config, database, shutdown }
    }

    /// An app already serving at `addr` (a child process) over `database`.
    pub fn external(addr: SocketAddr, config: Arc<Config>, pool: PgPool, database: String) -> TestApp {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        TestApp { addr, http, pool, config, database, shutdown: CancellationToken::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(body).send().await.expect("POST")
    }

    pub async fn post_as(&self, path: &str, token: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("POST")
    }

    pub async fn delete_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.delete(self.url(path)).bearer_auth(token).send().await.expect("DELETE")
    }

    /// A user with `role` ("user" or "admin"), its email proven, and an access
    /// token of a live session, made directly (no password hashing) for tests
    /// about something else.
    pub async fn user_with_role(&self, role: &str) -> (Uuid, String) {
        let id = Uuid::now_v7();
        sqlx::query("INSERT INTO users (id, name, email, role, email_verified_at) VALUES ($1, 'Test', $2, $3, now())")
            .bind(id)
            .bind(format!("{}@example.com", id.simple()))
            .bind(role)
            .execute(&self.pool)
            .await
            .expect("insert user");
        let mut conn = self.pool.acquire().await.expect("connection");
        let session = lockers_core::accounts::sessions::start(&mut conn, id, self.config.refresh_token_ttl)
            .await
            .expect("session");
        let keys = lockers_core::accounts::access_token::TokenKeys::from_config(&self.config);
        let token = keys.issue(id, 0, session.id).expect("token");
        (id, token)
    }

    pub async fn patch_as(&self, path: &str, token: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http.patch(self.url(path)).bearer_auth(token).json(body).send().await.expect("PATCH")
    }

    /// Starts the worker runtime against this app's database.
    pub fn start_workers(&self, providers: Option<Providers>) -> Workers {
        Workers::start(self.config.clone(), self.pool.clone(), providers)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if !self.database.is_empty() {
            drop_database(&self.database);
        }
    }
}

/// A running worker runtime.
pub struct Workers {
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Workers {
    pub fn start(config: Arc<Config>, pool: PgPool, providers: Option<Providers>) -> Workers {
        let mut runtime = Runtime::new(config, pool);
        if let Some(p) = providers {
            runtime = runtime.with_providers(p);
        }
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(runtime.run_until_stopped(shutdown.clone()));
        Workers { shutdown, handle }
    }

    /// Graceful shutdown: returns once in-flight jobs finished and the rest were handed back.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("workers stop within 30 s")
            .expect("worker task")
            .expect("workers stopped cleanly");
    }
}

/// Polls `check` every 20 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The app with workers delivering through a fake SMTP server and a fake
/// Twilio, so tests read codes the way a person would.
pub struct Stack {
    pub app: TestApp,
    pub smtp: FakeSmtp,
    pub twilio: FakeTwilio,
    /// None when the workers run elsewhere (a child process).
    _workers: Option<Workers>,
}

impl std::ops::Deref for Stack {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Stack {
    pub async fn spawn(extra: &[&str]) -> Stack {
        let (smtp, twilio) = (FakeSmtp::start().await, FakeTwilio::start().await);
        let mut flags = Self::flags(&smtp, &twilio);
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let app = TestApp::spawn_with(&flags).await;
        let workers = app.start_workers(None);
        Stack { app, smtp, twilio, _workers: Some(workers) }
    }

    /// The fakes' flags, no scheduler, and one message at a time, oldest
    /// first: tests name codes by their order of arrival.
    pub fn flags(smtp: &FakeSmtp, twilio: &FakeTwilio) -> Vec<String> {
        let mut flags: Vec<String> = smtp.flags();
        flags.extend(twilio.flags());
        flags.push("--scheduler=false".into());
        flags.push("--worker-queues=otp=1,notify=1,sweep=1,door=2".into());
        flags
    }

    /// A stack whose app and workers run elsewhere, configured with [`Stack::flags`].
    pub fn external(app: TestApp, smtp: FakeSmtp, twilio: FakeTwilio) -> Stack {
        Stack { app, smtp, twilio, _workers: None }
    }

    /// The code in the `n`th (1-based) message to `address`, waiting for it.
    pub async fn email_code(&self, address: &str, n: usize) -> String {
        let arrived = eventually(Duration::from_secs(10), || async { self.smtp.mails_to(address).len() >= n }).await;
        assert!(arrived, "no email #{n} to {address}");
        self.smtp.mails_to(address)[n - 1].code().expect("a code in the email")
    }

    /// The code in the `n`th (1-based) SMS to `phone`, waiting for it.
    pub async fn sms_code(&self, phone: &str, n: usize) -> String {
        let to_phone = || self.twilio.messages().into_iter().filter(|m| m.to == phone).collect::<Vec<_>>();
        let arrived = eventually(Duration::from_secs(10), || async { to_phone().len() >= n }).await;
        assert!(arrived, "no SMS #{n} to {phone}");
        let body = to_phone()[n - 1].body.clone();
        body.split(|c: char| !c.is_ascii_digit()).find(|w| w.len() == 6).expect("a code in the SMS").to_owned()
    }

    /// How many messages went to `address` (email or phone) so far.
    pub fn sent_to(&self, address: &str) -> usize {
        self.smtp.mails_to(address).len() + self.twilio.messages().iter().filter(|m| m.to == address).count()
    }
}
