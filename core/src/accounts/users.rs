//! The user aggregate: accounts, roles, verification and the SQL that owns them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::accounts::Taken;
use crate::accounts::contact::{Contact, Email, Phone};
use crate::db::{DbError, During};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
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

const COLUMNS: &str = "id, name, email, phone, role, password_hash, email_verified_at, phone_verified_at, \
                       disabled_at, session_epoch, created_at";

pub struct NewUser<'a> {
    pub id: Uuid,
    pub name: &'a Name,
    pub email: &'a Email,
    pub phone: Option<&'a Phone>,
    pub password_hash: &'a str,
}

/// Whether an account proved `phone`. Only that makes a phone taken: an
/// unverified phone typed by someone else must not block its owner.
pub async fn phone_proven(conn: &mut PgConnection, phone: &Phone) -> Result<bool, DbError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE phone = $1 AND phone_verified_at IS NOT NULL)")
        .bind(phone.as_str())
        .fetch_one(conn)
        .await
        .during("look up a proven phone")
}

/// Inserts a user; a duplicate email fails on `users_email_key` (see [`Taken::of`]).
pub async fn insert(conn: &mut PgConnection, new: NewUser<'_>) -> Result<User, DbError> {
    let sql = format!(
        "INSERT INTO users (id, name, email, phone, password_hash) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(new.id)
        .bind(new.name.as_str())
        .bind(new.email.as_str())
        .bind(new.phone.map(Phone::as_str))
        .bind(new.password_hash)
        .fetch_one(conn)
        .await
        .during("insert a user")
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

/// The account a contact names. Several accounts may hold one phone while it
/// is unverified: the one that proved it comes first, then accounts with a
/// proven email (only they can prove a phone), latest claim first. Callers
/// that need a proven contact check it themselves. Never used to choose whose
/// phone a verification code proves: that is the signed-in caller's.
pub async fn by_contact(conn: &mut PgConnection, contact: &Contact) -> Result<Option<User>, sqlx::Error> {
    let sql = match contact {
        Contact::Email(_) => format!("SELECT {COLUMNS} FROM users WHERE email = $1"),
        Contact::Phone(_) => format!(
            "SELECT {COLUMNS} FROM users WHERE phone = $1
             ORDER BY phone_verified_at IS NULL, email_verified_at IS NULL, created_at DESC LIMIT 1"
        ),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(contact.as_str()).fetch_optional(conn).await
}

/// The user behind an access token, provided the token's session (its
/// refresh-token family) still has a live token: one query on the request path,
/// so a logout or a reuse revocation ends the session's access tokens at once.
pub async fn by_session(conn: &mut PgConnection, id: Uuid, session: Uuid) -> Result<Option<User>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM users u WHERE id = $1 AND EXISTS (
             SELECT 1 FROM refresh_tokens t
             WHERE t.family_id = $2 AND t.user_id = u.id AND t.revoked_at IS NULL AND t.expires_at > now())"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(session).fetch_optional(conn).await
}

/// Reads a user and locks the row for the rest of the transaction.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

/// Whoever proves an email owns the account. On the first proof of `email`
/// for user `id` (whose row the caller locked), everything set before it by
/// whoever typed the email stops working: the password and the (unverified)
/// phone given at signup, and every session. `knows_password`: the prover
/// also gave the signup password, so they are whoever signed up, and the
/// password and phone are theirs to keep. Later proofs change nothing. Run in
/// the transaction that redeemed the proof.
pub async fn prove_email(
    conn: &mut PgConnection,
    id: Uuid,
    email: &Email,
    knows_password: bool,
) -> Result<Option<EmailProof>, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET
             email_verified_at = now(),
             password_hash = CASE WHEN $3 THEN password_hash END,
             phone = CASE WHEN $3 THEN phone END,
             phone_verified_at = CASE WHEN $3 THEN phone_verified_at END,
             session_epoch = session_epoch + 1,
             updated_at = now()
         WHERE id = $1 AND email = $2 AND email_verified_at IS NULL
         RETURNING {COLUMNS}"
    );
    let claimed: Option<User> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(email.as_str())
        .bind(knows_password)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(user) = claimed {
        crate::accounts::sessions::end_all(conn, id).await?;
        return Ok(Some(EmailProof::Claimed(user)));
    }
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND email = $2");
    let user: Option<User> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(email.as_str()).fetch_optional(conn).await?;
    Ok(user.map(EmailProof::AlreadyProven))
}

/// What proving an email did.
#[derive(Debug)]
pub enum EmailProof {
    /// The first proof: earlier password, phone and sessions are gone.
    Claimed(User),
    /// Proven before; nothing changed.
    AlreadyProven(User),
}

impl EmailProof {
    pub fn user(self) -> User {
        match self {
            Self::Claimed(u) | Self::AlreadyProven(u) => u,
        }
    }
}

/// What proving a phone did.
#[derive(Debug)]
pub enum PhoneProof {
    /// Verified on this account; `taken_from` unverified holders lost it.
    Proven { user: User, taken_from: u64 },
    /// The account's email is not proven yet, so the account has no owner to
    /// give the phone to; nothing changed.
    EmailNotProven,
    /// Another account proved this phone first.
    Taken,
}

/// Namespace of the advisory locks `prove_phone` takes ("PHON").
const PHONE_PROOF_LOCK: i32 = 0x5048_4f4e;

/// Proves `phone` for user `id`: the phone is verified on that account and
/// taken, in the same transaction, from every other account holding it
/// unverified. `None` when the account no longer holds this phone.
pub async fn prove_phone(conn: &mut PgConnection, id: Uuid, phone: &Phone) -> Result<Option<PhoneProof>, DbError> {
    // Two accounts proving one phone at once would each lock its own row and
    // then wait for the other's: take turns per phone instead of deadlocking.
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(PHONE_PROOF_LOCK)
        .bind(phone.as_str())
        .execute(&mut *conn)
        .await
        .during("take the phone proof lock")?;
    let Some(user) = lock(conn, id).await.during("lock a user")?.filter(|u| u.phone.as_deref() == Some(phone.as_str()))
    else {
        return Ok(None);
    };
    if user.email_verified_at.is_none() {
        return Ok(Some(PhoneProof::EmailNotProven));
    }
    if user.phone_verified_at.is_some() {
        return Ok(Some(PhoneProof::Proven { user, taken_from: 0 }));
    }
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE phone = $1 AND phone_verified_at IS NOT NULL AND id <> $2)",
    )
    .bind(phone.as_str())
    .bind(id)
    .fetch_one(&mut *conn)
    .await
    .during("look up a proven phone")?;
    if taken {
        return Ok(Some(PhoneProof::Taken));
    }
    let taken_from = sqlx::query(
        "UPDATE users SET phone = NULL, updated_at = now()
         WHERE phone = $1 AND id <> $2 AND phone_verified_at IS NULL",
    )
    .bind(phone.as_str())
    .bind(id)
    .execute(&mut *conn)
    .await
    .during("take a phone from its unverified holders")?
    .rows_affected();
    let sql =
        format!("UPDATE users SET phone_verified_at = now(), updated_at = now() WHERE id = $1 RETURNING {COLUMNS}");
    let proven = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(conn).await.during("prove a phone");
    match proven {
        Ok(user) => Ok(Some(PhoneProof::Proven { user, taken_from })),
        // Another account proved it concurrently: the unique index decided.
        Err(e) if Taken::of(&e) == Some(Taken::Phone) => Ok(Some(PhoneProof::Taken)),
        Err(e) => Err(e),
    }
}

/// What `make_admin` found.
#[derive(Debug)]
pub enum Promotion {
    Created(User),
    /// The account existed: it now holds only what the operator set.
    Promoted(User),
}

/// The operator's word (`lockers-admin create-admin`): `email` belongs to an
/// admin whose password is `hash`. An existing account under that email may
/// have been registered by anyone, so promoting it leaves nothing set by
/// someone else working: the password is replaced, every session ends, the
/// email counts as proven (the operator vouches for it), the phone is dropped
/// (whoever proved it may not be the operator: a proven phone logs in by code)
/// and codes still live for the account die.
pub async fn make_admin(
    conn: &mut PgConnection,
    name: &Name,
    email: &Email,
    hash: &str,
) -> Result<Promotion, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET
             role = 'admin',
             name = $2,
             password_hash = $3,
             email_verified_at = coalesce(email_verified_at, now()),
             phone = NULL,
             phone_verified_at = NULL,
             session_epoch = session_epoch + 1,
             updated_at = now()
         WHERE email = $1 RETURNING {COLUMNS}"
    );
    let promoted: Option<User> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(email.as_str())
        .bind(name.as_str())
        .bind(hash)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(user) = promoted {
        crate::accounts::sessions::end_all(conn, user.id).await?;
        sqlx::query("DELETE FROM one_time_codes WHERE user_id = $1").bind(user.id).execute(&mut *conn).await?;
        return Ok(Promotion::Promoted(user));
    }
    let sql = format!(
        "INSERT INTO users (id, name, email, password_hash, role, email_verified_at)
         VALUES ($1, $2, $3, $4, 'admin', now()) RETURNING {COLUMNS}"
    );
    let user = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(name.as_str())
        .bind(email.as_str())
        .bind(hash)
        .fetch_one(conn)
        .await?;
    Ok(Promotion::Created(user))
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
