//! The user aggregate: accounts, roles, verification and the SQL that owns them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::contact::{Contact, Email, Phone};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub role: Role,
    pub password_hash: Option<String>,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub phone_verified_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub session_epoch: i32,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

/// A display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        let len = s.chars().count();
        ((1..=100).contains(&len) && !s.chars().any(char::is_control)).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("email already registered")]
    EmailTaken,
    #[error("phone already registered")]
    PhoneTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, name, email, phone, role, password_hash, email_verified_at, phone_verified_at, \
                       disabled_at, session_epoch, created_at";

pub struct NewUser<'a> {
    pub name: &'a Name,
    pub email: &'a Email,
    pub phone: Option<&'a Phone>,
    pub password_hash: &'a str,
}

/// Inserts a user; duplicates are told apart by constraint name.
pub async fn insert(conn: &mut PgConnection, new: NewUser<'_>) -> Result<User, UserError> {
    let sql = format!(
        "INSERT INTO users (id, name, email, phone, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(new.name.as_str())
        .bind(new.email.as_str())
        .bind(new.phone.map(Phone::as_str))
        .bind(new.password_hash)
        .fetch_one(conn)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.constraint() == Some("users_email_key") => UserError::EmailTaken,
            sqlx::Error::Database(d) if d.constraint() == Some("users_phone_key") => UserError::PhoneTaken,
            _ => UserError::Database(e),
        })
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

pub async fn by_contact(conn: &mut PgConnection, contact: &Contact) -> Result<Option<User>, sqlx::Error> {
    let column = match contact {
        Contact::Email(_) => "email",
        Contact::Phone(_) => "phone",
    };
    let sql = format!("SELECT {COLUMNS} FROM users WHERE {column} = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(contact.as_str()).fetch_optional(conn).await
}

/// Marks `contact` verified for its user.
pub async fn mark_verified(conn: &mut PgConnection, contact: &Contact) -> Result<Option<User>, sqlx::Error> {
    let (column, key) = match contact {
        Contact::Email(_) => ("email_verified_at", "email"),
        Contact::Phone(_) => ("phone_verified_at", "phone"),
    };
    let sql = format!(
        "UPDATE users SET {column} = coalesce({column}, now()), updated_at = now() WHERE {key} = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(contact.as_str()).fetch_optional(conn).await
}

/// Sets a new password hash and ends every outstanding access token.
pub async fn set_password(conn: &mut PgConnection, id: Uuid, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $2, session_epoch = session_epoch + 1, updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(hash)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Changes role and/or disabled state; disabling ends every access token.
pub async fn update_admin_fields(
    conn: &mut PgConnection,
    id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<Option<User>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET
             role = coalesce($2, role),
             disabled_at = CASE WHEN $3 IS NULL THEN disabled_at
                                WHEN $3 THEN coalesce(disabled_at, now())
                                ELSE NULL END,
             session_epoch = session_epoch + CASE WHEN $3 AND disabled_at IS NULL THEN 1 ELSE 0 END,
             updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(role).bind(disabled).fetch_optional(conn).await
}

/// One page of users, oldest first, and the total count.
pub async fn list(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<(Vec<User>, i64), sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2");
    let users = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(conn).await?;
    Ok((users, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Asha  ").unwrap().as_str(), "Asha");
        assert!(Name::parse("   ").is_none());
        assert!(Name::parse(&"é".repeat(100)).is_some());
        assert!(Name::parse(&"é".repeat(101)).is_none());
        assert!(Name::parse("a\u{0}b").is_none());
    }
}
