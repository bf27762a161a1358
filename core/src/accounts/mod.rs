//! Accounts: users, their contacts and passwords, sessions and access tokens,
//! and the use cases every caller shares: signup, code requests, proving a
//! contact, password and code login, password reset, token rotation, logout,
//! an admin's changes to users and the operator's `create-admin`.
//!
//! The use cases needing the process's limits, keys and hashing pool are
//! methods of [`Accounts`] (built once); the others are free functions.

pub mod access_token;
pub mod admin;
pub mod codes;
pub mod contact;
pub mod expiry;
pub mod hashing;
pub mod login;
pub mod ownership;
pub mod password;
pub mod sessions;
pub mod signup;
pub mod tokens;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::accounts::access_token::TokenKeys;
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::DbError;
use crate::messaging::codes::{Codes, RateLimited};
use crate::rate_limit::{Limit, RateLimiter};

/// What the account use cases share: configuration, the limiter, code
/// sending, the token keys and the hashing pool.
pub struct Accounts {
    config: Arc<Config>,
    limiter: Arc<RateLimiter>,
    codes: Arc<Codes>,
    tokens: TokenKeys,
    /// Argon2 runs on a few threads that keep their memory: a burst of
    /// logins queues, and the memory stays `threads * 19 MiB`.
    hashing: hashing::HashingPool,
}

impl Accounts {
    pub fn new(config: Arc<Config>, limiter: Arc<RateLimiter>, codes: Arc<Codes>) -> Self {
        Self {
            tokens: TokenKeys::from_config(&config),
            hashing: hashing::HashingPool::new(config.password_hash_threads),
            config,
            limiter,
            codes,
        }
    }

    /// The keys access tokens are signed and checked with.
    pub fn tokens(&self) -> &TokenKeys {
        &self.tokens
    }

    /// Counts one unauthenticated account call against the caller's address
    /// (`AUTH_IP_LIMIT_PER_MIN`): the intake applies it before anything else.
    pub async fn limit_ip(&self, by: &Actor) -> Result<(), RateLimited> {
        let limit = Limit::per(self.config.auth_ip_limit_per_min, Duration::from_secs(60));
        RateLimited::check(self.limiter.hit(&format!("auth_ip:{}", ip_key(by)), limit).await)
    }

    /// Hashes a new password on the hashing pool.
    async fn hash(&self, password: password::Password) -> Result<String, Internal> {
        self.hashing
            .run(move |memory| password::hash_with(&password, memory))
            .await
            .map_err(|e| Internal(e.to_string()))?
            .map_err(|e| Internal(format!("password hashing failed: {e}")))
    }

    /// Checks `given` against `hash` on the hashing pool; an input too long to
    /// be a password is refused without hashing.
    async fn password_matches(&self, given: String, hash: String) -> Result<bool, Internal> {
        if given.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.hashing
            .run(move |memory| password::verify_with(&given, &hash, memory))
            .await
            .map_err(|e| Internal(e.to_string()))
    }
}

/// Longer inputs cannot be a valid password (`password::MAX_LEN` characters
/// of at most 4 bytes, with room to spare).
const MAX_PASSWORD_BYTES: usize = 1024;

/// A fault of the process itself (hashing pool, token signing): an opaque 500.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Internal(pub String);

/// A contact already held by another account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Email,
    Phone,
}

impl Taken {
    /// The one place constraint violations of `users` are named: the email's
    /// unique key and the unique index of verified phones (migration 0005).
    /// Any other constraint is not a taken contact and stays a database error.
    pub fn of(error: &DbError) -> Option<Self> {
        match error.constraint()? {
            "users_email_key" => Some(Self::Email),
            "users_verified_phone_key" => Some(Self::Phone),
            _ => None,
        }
    }
}

/// The key of per-address limits: the IPv4 address, or the IPv6 /64.
fn ip_key(by: &Actor) -> String {
    by.client_ip.map(crate::net::rate_limit_key).unwrap_or_else(|| "unknown".into())
}

/// Records a security event about user `user_id`.
async fn audit_user(
    conn: &mut PgConnection,
    by: &Actor,
    action: &'static str,
    user_id: Uuid,
    after: Option<Value>,
) -> Result<(), DbError> {
    audit::record(conn, by, audit::Entry::change(action, "user", user_id, None::<&()>, after.as_ref())).await
}
