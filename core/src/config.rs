//! The whole configuration: one typed struct read from the environment (and
//! `.env` outside production), validated once at start-up.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::accounts::contact::Email;
use crate::jobs::Queue;
use crate::net::{CidrList, OriginList};

/// Where the process runs. Production refuses development conveniences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmsProvider {
    /// Prints messages to the log: development only.
    Console,
    Twilio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmailProvider {
    /// Prints messages to the log: development only.
    Console,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoorDriver {
    /// Acknowledges every open and reports the door closed: development only.
    Simulated,
    /// Door controller protocol v1 over HTTP, per locker point.
    Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A random 256-bit secret, hex-encoded: the development default.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Concurrency per queue, written `otp=8,notify=8,sweep=1`.
/// Queues left out are not run by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConcurrency(pub Vec<(Queue, usize)>);

impl QueueConcurrency {
    pub fn get(&self, queue: Queue) -> Option<usize> {
        self.0.iter().find(|(q, _)| *q == queue).map(|(_, n)| *n)
    }
}

impl FromStr for QueueConcurrency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<(Queue, usize)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, n) = part.split_once('=').ok_or_else(|| format!("`{part}` is not `queue=concurrency`"))?;
            let queue: Queue = name.trim().parse()?;
            let n: usize =
                n.trim().parse().map_err(|_| format!("concurrency for `{name}` must be a positive integer"))?;
            if n == 0 || n > 1024 {
                return Err(format!("concurrency for `{name}` must be between 1 and 1024"));
            }
            if out.iter().any(|(q, _)| *q == queue) {
                return Err(format!("queue `{name}` is listed twice"));
            }
            out.push((queue, n));
        }
        Ok(Self(out))
    }
}

/// A cron expression with seconds (`sec min hour day month weekday`), parsed at start-up.
#[derive(Clone, Debug)]
pub struct CronSchedule(pub cron::Schedule);

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        cron::Schedule::from_str(s).map(Self).map_err(|e| format!("invalid cron expression `{s}`: {e}"))
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("`{s}` is not a whole number of seconds"))
}

fn parse_millis(s: &str) -> Result<Duration, String> {
    s.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("`{s}` is not a whole number of milliseconds"))
}

/// Every setting of the system. Each field reads the environment variable named
/// in its `env` attribute; `--help` on any binary lists them with their defaults.
#[derive(Debug, Clone, Parser)]
#[command(about = None, long_about = None, args_override_self = true)]
pub struct Config {
    /// PostgreSQL database; created and migrated at start-up if missing.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/lockers")]
    pub database_url: String,

    /// Largest number of PostgreSQL connections this process opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    // Database faults, provider timeouts and housekeeping (issue 8, helper C) ---
    /// Milliseconds a request waits for a database connection before it is
    /// answered `503 database_unavailable` (so an unreachable database never hangs the intake).
    #[arg(long = "database-acquire-timeout-ms", env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value = "2000", value_parser = parse_millis)]
    pub database_acquire_timeout: Duration,

    /// Seconds one whole SMTP delivery (connect, greeting, commands, data) may take
    /// before the attempt fails: retried later if the message content was not
    /// sent yet, else the message is left `unknown` (never sent twice).
    #[arg(long = "smtp-timeout-secs", env = "SMTP_TIMEOUT_SECS", default_value = "10", value_parser = parse_secs)]
    pub smtp_timeout: Duration,

    /// Seconds a whole Twilio API call may take before the attempt fails: retried later
    /// if the connection was never made, else the message is left `unknown`.
    #[arg(long = "twilio-timeout-secs", env = "TWILIO_TIMEOUT_SECS", default_value = "10", value_parser = parse_secs)]
    pub twilio_timeout: Duration,

    /// Seconds finished notification rows (sent, failed) are kept before the sweep deletes them.
    #[arg(long = "notification-retention-secs", env = "NOTIFICATION_RETENTION_SECS", default_value = "2592000", value_parser = parse_secs)]
    pub notification_retention: Duration,

    /// Redis for rate limits shared between intake replicas; unset: in-process limiter.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key this process writes, so deployments can share a server.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "lockers:")]
    pub redis_key_prefix: String,

    /// Address the HTTP intake listens on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// `production` refuses console providers, simulated doors and missing secrets.
    #[arg(long, env = "APP_ENV", value_enum, default_value = "development")]
    pub app_env: AppEnv,

    /// Bearer token `/metrics` asks for (intake and worker). Unset: `/metrics` is
    /// open in development, and not served by the intake in production (set a
    /// token, or scrape the workers' METRICS_ADDR on a private network).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Address a `lockers-worker` process serves its `/metrics` on (e.g.
    /// `0.0.0.0:9090`); unset: none. The intake serves its own on LISTEN_ADDR.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log lines as human-readable text or as JSON objects.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// HMAC key for access tokens (at least 32 bytes); random per start in development.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Earlier JWT secrets, comma-separated, still accepted (not signed with) while keys rotate.
    #[arg(long, env = "JWT_PREVIOUS_SECRETS", value_delimiter = ',', hide_env_values = true)]
    pub jwt_previous_secrets: Vec<Secret>,

    /// Lifetime of an access token, in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECS", default_value = "900", value_parser = parse_secs)]
    pub access_token_ttl: Duration,

    /// Absolute lifetime of a login session (its refresh-token family), in seconds.
    #[arg(long, env = "REFRESH_TOKEN_TTL_SECS", default_value = "604800", value_parser = parse_secs)]
    pub refresh_token_ttl: Duration,

    // Accounts (issue 8: account ownership).
    /// Seconds after signup an account whose email was never proven is deleted
    /// by the sweep (its address is then free for whoever owns it).
    #[arg(long, env = "UNVERIFIED_ACCOUNT_TTL_SECS", default_value = "604800", value_parser = parse_secs)]
    pub unverified_account_ttl: Duration,

    /// The longest wait between password tries for one identifier from one
    /// client IP, in seconds: after 5 failures the wait grows 1 s, 2 s, 4 s...
    /// up to this. (It no longer locks the identifier for everyone.)
    #[arg(long, env = "LOGIN_LOCKOUT_SECS", default_value = "900", value_parser = parse_secs)]
    pub login_lockout: Duration,

    /// Requests per minute one client IP may make to the unauthenticated `/auth` routes.
    #[arg(long, env = "AUTH_IP_LIMIT_PER_MIN", default_value_t = 60)]
    pub auth_ip_limit_per_min: u32,

    /// Server secret keying the hashes of one-time codes; random per start in development.
    #[arg(long, env = "OTP_PEPPER", hide_env_values = true)]
    pub otp_pepper: Option<Secret>,

    /// How SMS messages are sent.
    #[arg(long, env = "SMS_PROVIDER", value_enum, default_value = "console")]
    pub sms_provider: SmsProvider,

    /// Twilio account id (`AC...`), the user name of its Basic auth.
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,

    /// Twilio auth token, the password of its Basic auth.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<Secret>,

    /// Sender number (E.164) or messaging service id for SMS.
    #[arg(long, env = "TWILIO_FROM")]
    pub twilio_from: Option<String>,

    /// Base URL of the Twilio REST API (tests point it at a fake server).
    #[arg(long, env = "TWILIO_API_BASE", default_value = "https://api.twilio.com")]
    pub twilio_api_base: String,

    /// How email is sent.
    #[arg(long, env = "EMAIL_PROVIDER", value_enum, default_value = "console")]
    pub email_provider: EmailProvider,

    /// SMTP relay host name.
    #[arg(long, env = "SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// SMTP relay port (587 for STARTTLS, 465 for implicit TLS).
    #[arg(long, env = "SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    /// SMTP user; unset: no authentication.
    #[arg(long, env = "SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// SMTP password.
    #[arg(long, env = "SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<Secret>,

    /// `starttls`, `tls` (implicit) or `none`.
    #[arg(long, env = "SMTP_TLS", value_enum, default_value = "starttls")]
    pub smtp_tls: SmtpTls,

    /// PEM file of extra CA certificates trusted for the mail relay (a
    /// company relay with a private CA); the public roots stay trusted. Read
    /// when the workers start: an unreadable file or one without a
    /// certificate stops the start.
    #[arg(long, env = "SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// From address of every email, e.g. `Lockers <no-reply@example.com>`.
    #[arg(long, env = "EMAIL_FROM")]
    pub email_from: Option<String>,

    /// How door commands reach the lockers.
    #[arg(long, env = "DOOR_DRIVER", value_enum, default_value = "simulated")]
    pub door_driver: DoorDriver,

    /// Price per started hour in minor units, for sizes without a tariff row.
    #[arg(long, env = "DEFAULT_TARIFF_PAISE", default_value_t = 5000)]
    pub default_tariff_paise: i64,

    /// ISO 4217 currency of the default tariff.
    #[arg(long, env = "CURRENCY", default_value = "INR")]
    pub currency: String,

    /// Prices per started hour by locker size in minor units, e.g.
    /// `S=4000,M=5000,L=6000,XL=8000`; sizes left out cost DEFAULT_TARIFF_PAISE.
    /// Rows of the `tariffs` table win over both from their `valid_from` on.
    #[arg(long, env = "TARIFFS", default_value = "")]
    pub tariffs: crate::billing::SizeTariffs,

    /// Queues this process works and how many jobs of each run at once.
    #[arg(long, env = "WORKER_QUEUES", default_value = "otp=8,notify=8,door=8,billing=1,sweep=1")]
    pub worker_queues: QueueConcurrency,

    /// Whether this process runs the cron scheduler (billing, sweeps).
    #[arg(long, env = "SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,

    /// When expired reservations, codes and tokens are swept (cron with seconds, UTC).
    #[arg(long, env = "SWEEP_CRON", default_value = "0 * * * * *")]
    pub sweep_cron: CronSchedule,

    /// When hourly billing accrual runs (cron with seconds, UTC; default minute 0 of
    /// every hour). A late or missed run loses nothing: the next charges every hour since.
    #[arg(long, env = "BILLING_CRON", default_value = "0 0 * * * *")]
    pub billing_cron: CronSchedule,

    /// Seconds without a heartbeat after which a worker process is presumed dead
    /// and the jobs it held run elsewhere.
    #[arg(long = "job-rescue-after-secs", env = "JOB_RESCUE_AFTER_SECS", default_value = "60", value_parser = parse_secs)]
    pub job_rescue_after: Duration,

    /// Seconds finished jobs are kept for inspection; 0 (the default) deletes them when they
    /// finish, which keeps the hot table small (kept rows cost p99 at high rates; see ops/bench).
    #[arg(long = "job-retention-secs", env = "JOB_RETENTION_SECS", default_value = "0", value_parser = parse_secs)]
    pub job_retention: Duration,

    /// Milliseconds between checks for due jobs when no wake-up arrives: the
    /// backstop for a missed notification (e.g. while the listener reconnects).
    #[arg(long = "job-poll-ms", env = "JOB_POLL_MS", default_value = "1000", value_parser = parse_millis)]
    pub job_poll: Duration,

    /// Jobs a worker claims ahead of its free slots, per queue and process
    /// (also the largest claim batch). Handed back at once on graceful shutdown.
    #[arg(long, env = "JOB_PREFETCH", default_value_t = 100)]
    pub job_prefetch: usize,

    /// Milliseconds before the first retry of a failed job; doubles per attempt, with jitter.
    #[arg(long = "job-backoff-base-ms", env = "JOB_BACKOFF_BASE_MS", default_value = "1000", value_parser = parse_millis)]
    pub job_backoff_base: Duration,

    /// Seconds the wait between retries grows to at most.
    #[arg(long = "job-backoff-max-secs", env = "JOB_BACKOFF_MAX_SECS", default_value = "60", value_parser = parse_secs)]
    pub job_backoff_max: Duration,

    // Job engine hardening (issue 8): run timeouts (leases), idempotency key
    // window, the workers' own connection pool.
    /// Seconds one run may take before it is cancelled and retried, per queue
    /// (`queue=secs`, comma-separated); queues left out keep their default.
    #[arg(
        long = "job-timeout-secs",
        env = "JOB_TIMEOUT_SECS",
        default_value = "otp=30,notify=60,door=30,billing=300,sweep=300"
    )]
    pub job_timeouts: crate::jobs::QueueTimeouts,

    /// Seconds an idempotency key keeps deduplicating enqueues, whatever became of its job.
    #[arg(long = "job-key-window-secs", env = "JOB_KEY_WINDOW_SECS", default_value = "86400", value_parser = parse_secs)]
    pub job_key_window: Duration,

    /// Connections of the job handlers' own pool (apart from the intake's); unset: the
    /// sum of WORKER_QUEUES concurrency plus one for the scheduler. Smaller is refused.
    #[arg(long, env = "WORKER_DATABASE_MAX_CONNECTIONS")]
    pub worker_database_max_connections: Option<u32>,

    /// Seconds in-flight requests and jobs get to finish after a shutdown signal.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value = "30", value_parser = parse_secs)]
    pub shutdown_timeout: Duration,

    /// Seconds one HTTP request may take before it is answered 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value = "30", value_parser = parse_secs)]
    pub request_timeout: Duration,

    /// Largest request body in bytes; a larger one is answered 413 `payload_too_large`.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 65_536)]
    pub body_limit_bytes: usize,

    /// Browser origins allowed to call the API from another origin (CORS),
    /// comma-separated, e.g. `https://app.example.com`; empty: none.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: OriginList,

    // --- Limits that cannot be turned against users (issue 8: client IPs, SMS, public reads) ---
    /// Proxies whose `X-Forwarded-For` is believed, as comma-separated CIDRs
    /// (e.g. `10.0.0.0/8,::1`); empty: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: CidrList,

    /// SMS messages (one-time codes) sent per hour, across every replica; when
    /// spent, codes go by email where possible and operators are alerted.
    #[arg(long, env = "SMS_BUDGET_PER_HOUR", default_value_t = 500)]
    pub sms_budget_per_hour: u32,

    /// Country calling codes SMS may be sent to, comma-separated (e.g. `91,44`).
    #[arg(long, env = "SMS_ALLOWED_COUNTRY_CODES", value_delimiter = ',', default_value = "91")]
    pub sms_allowed_country_codes: Vec<CallingCode>,

    /// Public reads (places, lockers, search) one client IP may make per minute.
    #[arg(long, env = "PUBLIC_READ_LIMIT_PER_MIN", default_value_t = 600)]
    pub public_read_limit_per_min: u32,

    /// Seconds between full reloads of the search directory (points' heartbeats
    /// and a safety net; changes arrive sooner by NOTIFY). At least 1.
    #[arg(long = "search-refresh-secs", env = "SEARCH_REFRESH_SECS", default_value = "5", value_parser = parse_secs)]
    pub search_refresh: Duration,

    /// Argon2 threads: each keeps its 19 MiB of hashing memory for good, so
    /// this bounds both concurrent hashes and their memory. 0: one per two
    /// cores, at least 1, at most 4.
    #[arg(long, env = "PASSWORD_HASH_THREADS", default_value_t = 0)]
    pub password_hash_threads: usize,

    // --- The exchange: deposit (issue 10, helper "deposit") ---
    /// Seconds a reservation waits for its drop-off (the drop-off code lives as long);
    /// past it, a reservation whose door never opened is cancelled by the sweep.
    #[arg(long = "dropoff-window-secs", env = "DROPOFF_WINDOW_SECS", default_value = "900", value_parser = parse_secs)]
    pub dropoff_window: Duration,

    /// Seconds a stored item waits for its receiver before it expires (the
    /// window is fixed at deposit and kept with the item).
    #[arg(long = "pickup-window-secs", env = "PICKUP_WINDOW_SECS", default_value = "259200", value_parser = parse_secs)]
    pub pickup_window: Duration,

    /// Seconds a drop-off door may stay open (no `door_closed`) before admins are
    /// alerted and the locker goes to maintenance.
    #[arg(long = "door-close-timeout-secs", env = "DOOR_CLOSE_TIMEOUT_SECS", default_value = "120", value_parser = parse_secs)]
    pub door_close_timeout: Duration,

    /// Reservations (not yet dropped off) one sender may hold at once, so one
    /// account cannot reserve every locker of a point.
    #[arg(long, env = "MAX_OPEN_RESERVATIONS", default_value_t = 5)]
    pub max_open_reservations: u32,

    // --- Door controllers (issue 10, helper doors): the outbound credential, TLS, SSRF, retries ---
    /// Server secret the controller tokens are derived from (HMAC of the point id
    /// and its token generation), so the backend can present a point's token
    /// while the database keeps only its hash. At least 32 characters; a fixed
    /// value in development (tokens stay valid across restarts), required in production.
    /// Changing it changes every point's token.
    #[arg(long, env = "CONTROLLER_TOKEN_SECRET", hide_env_values = true)]
    pub controller_token_secret: Option<Secret>,

    /// PEM file of extra CA certificates the `http` door driver trusts (an
    /// operator's own CA); the public roots stay trusted.
    #[arg(long, env = "CONTROLLER_CA_FILE")]
    pub controller_ca_file: Option<std::path::PathBuf>,

    /// In production, controller URLs naming loopback, link-local, private or
    /// unspecified addresses are refused (no SSRF through a point's URL) unless this is true.
    #[arg(long, env = "CONTROLLER_ALLOW_PRIVATE_URLS", default_value_t = false, action = clap::ArgAction::Set)]
    pub controller_allow_private_urls: bool,

    /// Seconds one door command attempt (connect, request, answer) may take before it
    /// counts as a timeout and is retried.
    #[arg(long = "door-attempt-timeout-secs", env = "DOOR_ATTEMPT_TIMEOUT_SECS", default_value = "5", value_parser = parse_secs)]
    pub door_attempt_timeout: Duration,

    /// Seconds after a door command is issued during which failed attempts are
    /// retried (backoff from JOB_BACKOFF_BASE_MS doubling to JOB_BACKOFF_MAX_SECS);
    /// then the command is `failed` (locker to maintenance, admins alerted).
    #[arg(long = "door-retry-window-secs", env = "DOOR_RETRY_WINDOW_SECS", default_value = "600", value_parser = parse_secs)]
    pub door_retry_window: Duration,

    /// How long the sender of an expired item has to take it back; after
    /// that the item is abandoned: billing stops and staff are alerted.
    #[arg(long = "return-window-secs", env = "RETURN_WINDOW_SECS", default_value = "604800", value_parser = parse_secs)]
    pub return_window: Duration,

    /// Seconds after an item is stored that its receiver is reminded, once, to
    /// collect it (if it is still waiting and its pickup window is still open).
    #[arg(long = "pickup-reminder-after-secs", env = "PICKUP_REMINDER_AFTER_SECS", default_value = "86400", value_parser = parse_secs)]
    pub pickup_reminder_after: Duration,
}

/// A country calling code (ITU E.164), written with or without `+`. These codes
/// form a prefix code, so a phone belongs to the one code it starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingCode(String);

impl CallingCode {
    pub fn includes(&self, phone: &crate::accounts::contact::Phone) -> bool {
        phone.as_str().strip_prefix('+').is_some_and(|digits| digits.starts_with(&self.0))
    }
}

impl FromStr for CallingCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.trim().trim_start_matches('+');
        let ok =
            (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if ok { Ok(Self(digits.to_owned())) } else { Err(format!("`{s}` is not a country calling code such as 91")) }
    }
}

/// The controller token secret of development: fixed, so points' tokens stay
/// valid across restarts; production refuses it.
pub const DEV_CONTROLLER_TOKEN_SECRET: &str = "lockers-development-controller-token-secret";

/// A setting that cannot work, with the name of the variable to fix.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// Clap's error about a setting, told in terms of the environment
    /// variable (`REQUEST_TIMEOUT_SECS=abc: ...`), not the command-line flag
    /// nobody typed; the value is left out when the setting is a secret.
    pub fn from_clap(error: &clap::Error) -> Self {
        use clap::CommandFactory;
        use clap::error::{ContextKind, ContextValue};
        let flag = match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(arg)) => {
                arg.split_whitespace().next().unwrap_or_default().trim_start_matches('-')
            }
            _ => return Self(error.to_string()),
        };
        let command = Config::command();
        let Some(arg) = command.get_arguments().find(|a| a.get_long() == Some(flag)) else {
            return Self(error.to_string());
        };
        let Some(env) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else {
            return Self(error.to_string());
        };
        let why = std::error::Error::source(error).map_or_else(|| "not a valid value".to_owned(), |e| e.to_string());
        let value = match error.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(v)) if !arg.is_hide_env_values_set() => format!("={v}"),
            _ => String::new(),
        };
        let expected = match error.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(values)) => format!(" (expected one of: {})", values.join(", ")),
            _ => String::new(),
        };
        Self(format!("{env}{value} is not valid: {why}{expected}"))
    }
}

impl Config {
    /// Reads `.env` (outside production) and the environment, then validates.
    pub fn from_env() -> Result<Self, ConfigError> {
        let production = std::env::var("APP_ENV").is_ok_and(|v| v.eq_ignore_ascii_case("production"));
        if !production {
            // A missing .env is normal; a malformed one is worth failing on.
            match dotenvy::dotenv() {
                Ok(_) => {}
                Err(e) if e.not_found() => {}
                Err(e) => return Err(ConfigError(format!(".env could not be read: {e}"))),
            }
        }
        let config = Self::try_parse_from(["lockers"]).map_err(|e| ConfigError::from_clap(&e))?;
        config.validated()
    }

    /// Checks the settings against each other and fills development defaults.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        let fail = |msg: &str| Err(ConfigError(msg.to_owned()));
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return fail("CURRENCY must be an ISO 4217 code such as INR");
        }
        if self.default_tariff_paise < 0 {
            return fail("DEFAULT_TARIFF_PAISE must not be negative");
        }
        if self.auth_ip_limit_per_min == 0 {
            return fail("AUTH_IP_LIMIT_PER_MIN must be at least 1");
        }
        if self.public_read_limit_per_min == 0 {
            return fail("PUBLIC_READ_LIMIT_PER_MIN must be at least 1");
        }
        if !(1024..=16 << 20).contains(&self.body_limit_bytes) {
            return fail("BODY_LIMIT_BYTES must be between 1024 and 16777216");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.search_refresh) {
            return fail("SEARCH_REFRESH_SECS must be between 1 and 3600");
        }
        if self.password_hash_threads > 64 {
            return fail("PASSWORD_HASH_THREADS must be at most 64 (each keeps 19 MiB)");
        }
        // The exchange's pickup window and return path (issue 10, helper collection).
        if self.return_window < Duration::from_secs(60) {
            return fail("RETURN_WINDOW_SECS must be at least 60");
        }
        if self.pickup_reminder_after < Duration::from_secs(60) {
            return fail("PICKUP_REMINDER_AFTER_SECS must be at least 60");
        }
        if self.login_lockout < Duration::from_secs(1) {
            return fail("LOGIN_LOCKOUT_SECS must be at least 1");
        }
        if self.access_token_ttl.is_zero() || self.refresh_token_ttl < self.access_token_ttl {
            return fail("ACCESS_TOKEN_TTL_SECS must be positive and at most REFRESH_TOKEN_TTL_SECS");
        }
        if self.unverified_account_ttl < crate::messaging::otp::VALIDITY {
            return fail("UNVERIFIED_ACCOUNT_TTL_SECS must be at least 600 (a signup code's validity)");
        }
        if self.database_max_connections < 2 {
            return fail("DATABASE_MAX_CONNECTIONS must be at least 2");
        }
        // Database faults, provider timeouts and housekeeping (issue 8, helper C).
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&self.database_acquire_timeout) {
            return fail("DATABASE_ACQUIRE_TIMEOUT_MS must be between 100 and 60000");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&self.smtp_timeout) {
            return fail("SMTP_TIMEOUT_SECS must be between 1 and 300");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&self.twilio_timeout) {
            return fail("TWILIO_TIMEOUT_SECS must be between 1 and 300");
        }
        if self.job_rescue_after < Duration::from_secs(1) {
            return fail("JOB_RESCUE_AFTER_SECS must be at least 1");
        }
        if self.job_poll < Duration::from_millis(10) {
            return fail("JOB_POLL_MS must be at least 10");
        }
        if self.job_prefetch == 0 || self.job_prefetch > 10_000 {
            return fail("JOB_PREFETCH must be between 1 and 10000");
        }
        if self.job_backoff_base.is_zero() || self.job_backoff_max < self.job_backoff_base {
            return fail("JOB_BACKOFF_BASE_MS must be positive and at most JOB_BACKOFF_MAX_SECS");
        }
        if self.job_key_window < Duration::from_secs(60) {
            return fail("JOB_KEY_WINDOW_SECS must be at least 60");
        }
        self.worker_pool_size()?;
        if !(Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(&self.dropoff_window) {
            return fail("DROPOFF_WINDOW_SECS must be between 60 and 86400");
        }
        if self.pickup_window < Duration::from_secs(3600) || self.pickup_window.as_secs() > i32::MAX as u64 {
            return fail("PICKUP_WINDOW_SECS must be at least 3600 (and fit in 32 bits)");
        }
        if self.door_close_timeout < Duration::from_secs(10) {
            return fail("DOOR_CLOSE_TIMEOUT_SECS must be at least 10");
        }
        if self.max_open_reservations == 0 {
            return fail("MAX_OPEN_RESERVATIONS must be at least 1");
        }

        // Door controllers (issue 10, helper doors).
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&self.door_attempt_timeout) {
            return fail("DOOR_ATTEMPT_TIMEOUT_SECS must be between 1 and 60");
        }
        if self.door_attempt_timeout >= self.job_timeouts.get(Queue::Door) {
            return fail("DOOR_ATTEMPT_TIMEOUT_SECS must be shorter than the door queue's JOB_TIMEOUT_SECS");
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.door_retry_window) {
            return fail("DOOR_RETRY_WINDOW_SECS must be between 1 and 3600");
        }
        if self.sms_provider == SmsProvider::Twilio
            && (self.twilio_account_sid.is_none() || self.twilio_auth_token.is_none() || self.twilio_from.is_none())
        {
            return fail("SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM");
        }
        if self.email_provider == EmailProvider::Smtp && (self.smtp_host.is_none() || self.email_from.is_none()) {
            return fail("EMAIL_PROVIDER=smtp needs SMTP_HOST and EMAIL_FROM");
        }
        if let Some(from) = &self.email_from
            && mailbox_address(from).and_then(|a| Email::parse(a).ok()).is_none()
        {
            return fail("EMAIL_FROM must be an address such as `Lockers <no-reply@example.com>`");
        }
        if self.app_env == AppEnv::Production {
            if self.sms_provider == SmsProvider::Console {
                return fail("APP_ENV=production refuses SMS_PROVIDER=console: set SMS_PROVIDER=twilio");
            }
            if self.email_provider == EmailProvider::Console {
                return fail("APP_ENV=production refuses EMAIL_PROVIDER=console: set EMAIL_PROVIDER=smtp");
            }
            if self.door_driver == DoorDriver::Simulated {
                return fail("APP_ENV=production refuses DOOR_DRIVER=simulated: set DOOR_DRIVER=http");
            }
            if self.jwt_previous_secrets.iter().any(|s| s.expose().len() < 32) {
                return fail("JWT_PREVIOUS_SECRETS must each be at least 32 characters");
            }
            for (name, secret) in [("JWT_SECRET", &self.jwt_secret), ("OTP_PEPPER", &self.otp_pepper)] {
                match secret {
                    None => return Err(ConfigError(format!("APP_ENV=production needs {name}"))),
                    Some(s) if s.expose().len() < 32 => {
                        return Err(ConfigError(format!("{name} must be at least 32 characters")));
                    }
                    Some(_) => {}
                }
            }
            if self.smtp_tls == SmtpTls::None {
                return fail("APP_ENV=production refuses SMTP_TLS=none: set SMTP_TLS=starttls or tls");
            }
        }
        // After the production block, so a missing provider or JWT secret is named first.
        match &self.controller_token_secret {
            Some(s) if s.expose().len() < 32 => return fail("CONTROLLER_TOKEN_SECRET must be at least 32 characters"),
            Some(s) if self.app_env == AppEnv::Production && s.expose() == DEV_CONTROLLER_TOKEN_SECRET => {
                return fail("APP_ENV=production refuses the development CONTROLLER_TOKEN_SECRET");
            }
            None if self.app_env == AppEnv::Production => {
                return fail("APP_ENV=production needs CONTROLLER_TOKEN_SECRET");
            }
            _ => {}
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return fail("METRICS_TOKEN must be at least 16 characters");
        }
        self.controller_token_secret.get_or_insert_with(|| Secret::new(DEV_CONTROLLER_TOKEN_SECRET));
        self.jwt_secret.get_or_insert_with(Secret::random);
        self.otp_pepper.get_or_insert_with(Secret::random);
        Ok(self)
    }

    pub fn is_production(&self) -> bool {
        self.app_env == AppEnv::Production
    }

    /// How long failed jobs wait before their next run.
    pub fn job_backoff(&self) -> crate::jobs::backoff::Backoff {
        crate::jobs::backoff::Backoff { base: self.job_backoff_base, max: self.job_backoff_max }
    }

    /// Connections the job handlers' pool gets: each running handler holds at
    /// most one at a time (never across a provider call), and the scheduler one.
    /// Refuses a configured size below that, naming the settings to change.
    pub fn worker_pool_size(&self) -> Result<u32, ConfigError> {
        let running: usize = self.worker_queues.0.iter().map(|(_, n)| n).sum();
        let need = u32::try_from(running).unwrap_or(u32::MAX).saturating_add(u32::from(self.scheduler)).max(1);
        match self.worker_database_max_connections {
            None => Ok(need),
            Some(size) if size >= need => Ok(size),
            Some(size) => Err(ConfigError(format!(
                "WORKER_DATABASE_MAX_CONNECTIONS={size} is smaller than the {need} connections the workers need \
                 (the WORKER_QUEUES concurrency plus one for the scheduler): raise it or lower WORKER_QUEUES"
            ))),
        }
    }

    /// The database name in `DATABASE_URL`.
    pub fn database_name(&self) -> Option<&str> {
        let tail = self.database_url.rsplit('/').next()?;
        let name = tail.split('?').next()?;
        (!name.is_empty()).then_some(name)
    }
}

/// The address inside `Name <local@domain>`, or the whole of `local@domain`.
fn mailbox_address(s: &str) -> Option<&str> {
    match (s.find('<'), s.rfind('>')) {
        (Some(l), Some(r)) if l < r && r == s.len() - 1 => Some(&s[l + 1..r]),
        (None, None) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["lockers"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).map_err(|e| ConfigError(e.to_string()))?.validated()
    }

    #[test]
    fn development_defaults_are_valid_and_get_random_secrets() {
        let a = parse(&[]).unwrap();
        let b = parse(&[]).unwrap();
        assert_eq!(a.database_name(), Some("lockers"));
        assert_ne!(a.jwt_secret, b.jwt_secret);
        assert_eq!(a.worker_queues.get(Queue::Otp), Some(8));
    }

    #[test]
    fn production_refuses_console_providers_and_names_the_setting() {
        let err = parse(&["--app-env", "production"]).unwrap_err();
        assert!(err.to_string().contains("SMS_PROVIDER"), "{err}");
    }

    #[test]
    fn production_refuses_missing_secrets() {
        let err = parse(&[
            "--app-env=production",
            "--sms-provider=twilio",
            "--twilio-account-sid=AC1",
            "--twilio-auth-token=t",
            "--twilio-from=+15550001111",
            "--email-provider=smtp",
            "--smtp-host=mail.example.com",
            "--email-from=no-reply@example.com",
            "--door-driver=http",
        ])
        .unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn production_accepts_a_complete_configuration() {
        let secret = "x".repeat(32);
        let config = parse(&[
            "--app-env=production",
            "--sms-provider=twilio",
            "--twilio-account-sid=AC1",
            "--twilio-auth-token=t",
            "--twilio-from=+15550001111",
            "--email-provider=smtp",
            "--smtp-host=mail.example.com",
            "--email-from=Lockers <no-reply@example.com>",
            "--door-driver=http",
            &format!("--jwt-secret={secret}"),
            &format!("--otp-pepper={secret}"),
            &format!("--controller-token-secret={secret}"),
        ])
        .unwrap();
        assert!(config.is_production());
    }

    #[test]
    fn bad_cron_and_queue_settings_are_refused() {
        assert!(parse(&["--sweep-cron", "every hour"]).is_err());
        assert!(parse(&["--worker-queues", "otp=0"]).is_err());
        assert!(parse(&["--worker-queues", "mail=1"]).is_err());
        assert!(parse(&["--worker-queues", "otp=1,otp=2"]).is_err());
        assert!(parse(&["--job-rescue-after-secs", "0"]).is_err());
        assert!(parse(&["--job-prefetch", "0"]).is_err());
        assert!(parse(&["--job-backoff-base-ms", "120000"]).is_err());
        let only_door = parse(&["--worker-queues", "door=3"]).unwrap();
        assert_eq!(only_door.worker_queues.get(Queue::Door), Some(3));
        assert_eq!(only_door.worker_queues.get(Queue::Otp), None);
    }

    #[test]
    fn limits_settings_parse_and_bad_values_are_refused() {
        let defaults = parse(&[]).unwrap();
        assert!(defaults.trusted_proxies.0.is_empty());
        assert_eq!(defaults.sms_allowed_country_codes, ["91".parse::<CallingCode>().unwrap()]);
        let set = parse(&["--trusted-proxies=10.0.0.0/8,::1", "--sms-allowed-country-codes=+91, 44"]).unwrap();
        assert_eq!(set.trusted_proxies.0.len(), 2);
        let uk = crate::accounts::contact::Phone::parse("+447700900123").unwrap();
        assert!(set.sms_allowed_country_codes.iter().any(|cc| cc.includes(&uk)));
        assert!(!defaults.sms_allowed_country_codes.iter().any(|cc| cc.includes(&uk)));
        assert!(parse(&["--trusted-proxies=10.0.0.0/40"]).is_err());
        assert!(parse(&["--sms-allowed-country-codes=india"]).is_err());
        assert!(parse(&["--sms-allowed-country-codes=1234"]).is_err());
        assert!(parse(&["--public-read-limit-per-min=0"]).is_err());
        assert!(parse(&["--login-lockout=0"]).is_err());
    }

    #[test]
    fn a_worker_pool_smaller_than_the_concurrency_is_refused_and_names_the_setting() {
        let err = parse(&["--worker-queues", "otp=8,notify=8", "--worker-database-max-connections", "10"]).unwrap_err();
        assert!(err.to_string().contains("WORKER_DATABASE_MAX_CONNECTIONS=10"), "{err}");
        let sized = parse(&["--worker-queues", "otp=8,notify=8"]).unwrap();
        assert_eq!(sized.worker_pool_size().unwrap(), 17, "8 + 8 handlers and the scheduler");
        let larger = parse(&["--worker-queues", "otp=2", "--scheduler=false", "--worker-database-max-connections=5"]);
        assert_eq!(larger.unwrap().worker_pool_size().unwrap(), 5);
    }

    #[test]
    fn unproven_accounts_live_at_least_as_long_as_their_signup_code() {
        assert_eq!(parse(&[]).unwrap().unverified_account_ttl, Duration::from_secs(7 * 24 * 3600));
        let err = parse(&["--unverified-account-ttl", "60"]).unwrap_err();
        assert!(err.to_string().contains("UNVERIFIED_ACCOUNT_TTL_SECS"), "{err}");
        assert!(parse(&["--unverified-account-ttl", "600"]).is_ok());
    }

    #[test]
    fn database_and_provider_timeouts_have_bounds() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.database_acquire_timeout, Duration::from_millis(2000));
        assert_eq!(defaults.smtp_timeout, Duration::from_secs(10));
        assert_eq!(defaults.notification_retention, Duration::from_secs(30 * 24 * 3600));
        assert!(parse(&["--database-acquire-timeout-ms", "0"]).is_err());
        assert!(parse(&["--smtp-timeout-secs", "0"]).is_err());
        assert!(parse(&["--twilio-timeout-secs", "0"]).is_err());
    }

    #[test]
    fn controller_settings_have_development_defaults_and_production_refuses_them() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.controller_token_secret, Some(Secret::new(DEV_CONTROLLER_TOKEN_SECRET)));
        assert_eq!(defaults.door_attempt_timeout, Duration::from_secs(5));
        assert_eq!(defaults.door_retry_window, Duration::from_secs(600));
        assert!(!defaults.controller_allow_private_urls);
        assert!(parse(&["--controller-token-secret", "short"]).is_err());
        assert!(parse(&["--door-attempt-timeout-secs", "0"]).is_err());
        assert!(parse(&["--door-attempt-timeout-secs", "30"]).is_err(), "not shorter than the door job timeout");
        assert!(parse(&["--door-retry-window-secs", "0"]).is_err());
        let secret = "x".repeat(32);
        let production = |controller: Option<&str>| {
            let mut args = vec![
                "--app-env=production".to_owned(),
                "--sms-provider=twilio".into(),
                "--twilio-account-sid=AC1".into(),
                "--twilio-auth-token=t".into(),
                "--twilio-from=+15550001111".into(),
                "--email-provider=smtp".into(),
                "--smtp-host=mail.example.com".into(),
                "--email-from=no-reply@example.com".into(),
                "--door-driver=http".into(),
                format!("--jwt-secret={secret}"),
                format!("--otp-pepper={secret}"),
            ];
            args.extend(controller.map(|c| format!("--controller-token-secret={c}")));
            parse(&args.iter().map(String::as_str).collect::<Vec<_>>())
        };
        let missing = production(None).unwrap_err();
        assert!(missing.to_string().contains("CONTROLLER_TOKEN_SECRET"), "{missing}");
        let dev = production(Some(DEV_CONTROLLER_TOKEN_SECRET)).unwrap_err();
        assert!(dev.to_string().contains("development CONTROLLER_TOKEN_SECRET"), "{dev}");
        let set = production(Some(&"c".repeat(40))).unwrap();
        assert_eq!(set.controller_token_secret, Some(Secret::new("c".repeat(40))));
    }

    #[test]
    fn a_bad_value_names_the_environment_variable_not_a_flag() {
        let err = Config::try_parse_from(["lockers", "--request-timeout", "abc"]).unwrap_err();
        let message = ConfigError::from_clap(&err).to_string();
        assert!(message.contains("REQUEST_TIMEOUT_SECS=abc"), "{message}");
        assert!(message.contains("whole number of seconds"), "{message}");
        assert!(!message.contains("--request-timeout"), "{message}");
        let err = Config::try_parse_from(["lockers", "--log-format", "xml"]).unwrap_err();
        let message = ConfigError::from_clap(&err).to_string();
        assert!(message.contains("LOG_FORMAT=xml") && message.contains("text, json"), "{message}");
    }

    #[test]
    fn the_env_example_lists_every_setting_with_its_default_and_nothing_else() {
        use clap::CommandFactory;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/.env.example");
        let text = std::fs::read_to_string(&path).unwrap();
        let listed: Vec<(String, String)> = text
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once('='))
            .filter(|(name, _)| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
            })
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let mut settings = Vec::new();
        for arg in Config::command().get_arguments() {
            let Some(env) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else { continue };
            let default: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let line = listed.iter().find(|(n, _)| *n == env);
            assert_eq!(
                line.map(|(_, v)| v.clone()),
                Some(default.join(",")),
                "{env} and its default in ops/.env.example"
            );
            settings.push(env);
        }
        for (name, _) in &listed {
            assert!(settings.contains(name), "ops/.env.example lists {name}, which no setting reads");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = parse(&["--jwt-secret", "super-secret-value-that-is-long-enough"]).unwrap();
        assert!(!format!("{config:?}").contains("super-secret"));
    }
}
