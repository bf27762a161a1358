//! Login sessions as families of opaque refresh tokens (256 random bits,
//! stored as SHA-256). Each use rotates the token; presenting a used token
//! again revokes the whole family, since one of the two holders is a thief.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// A refresh token as handed to the client. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts what a client sends back; anything of the wrong shape can never match.
    pub fn from_client(raw: &str) -> Option<Self> {
        let ok = raw.len() == 43 && URL_SAFE_NO_PAD.decode(raw).is_ok_and(|b| b.len() == 32);
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(***)")
    }
}

/// A login session: its id (the refresh-token family, named by the `sid` of
/// its access tokens) and its first refresh token.
#[derive(Debug)]
pub struct Session {
    pub id: Uuid,
    pub token: RefreshToken,
}

/// Starts a new family for `user_id` that ends `lifetime` from now.
pub async fn start(conn: &mut PgConnection, user_id: Uuid, lifetime: Duration) -> Result<Session, sqlx::Error> {
    let token = RefreshToken::generate();
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(id)
    .bind(token.digest())
    .bind(lifetime.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(Session { id, token })
}

#[derive(Debug)]
pub enum Rotation {
    /// The token was live: here is its successor, in the same family (session).
    Rotated { user_id: Uuid, family_id: Uuid, token: RefreshToken },
    /// The token had been used before: its family is now revoked.
    Reused { user_id: Uuid, family_id: Uuid },
    /// The token was spent by a refresh a moment ago (two requests racing):
    /// refused, but not taken for theft.
    JustUsed,
    /// Unknown, expired or revoked.
    Invalid,
}

/// How long a spent token answers "just used" rather than "reused": covers a
/// client whose two refreshes raced, so the winner's new session survives.
pub const REUSE_GRACE: Duration = Duration::from_secs(2);

/// Exchanges `token` for a new one. Run inside a transaction. The user row is
/// share-locked first, so a password reset or disabling (which update that
/// row) either waits for this rotation and then revokes its successor, or
/// finishes first and this rotation finds the token revoked. The token row
/// lock makes two exchanges of one token take turns; the second sees it used.
pub async fn rotate(conn: &mut PgConnection, token: &RefreshToken) -> Result<Rotation, sqlx::Error> {
    let owner: Option<Uuid> = sqlx::query_scalar("SELECT user_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(token.digest())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(owner) = owner else {
        return Ok(Rotation::Invalid);
    };
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR SHARE").bind(owner).execute(&mut *conn).await?;
    let row: Option<(Uuid, Uuid, Uuid, bool, bool, bool)> = sqlx::query_as(
        "SELECT id, user_id, family_id, used_at IS NOT NULL, revoked_at IS NULL AND expires_at > now(),
                coalesce(used_at > now() - make_interval(secs => $2), false)
         FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token.digest())
    .bind(REUSE_GRACE.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, user_id, family_id, used, live, just_used)) = row else {
        return Ok(Rotation::Invalid);
    };
    if used && just_used && live {
        return Ok(Rotation::JustUsed);
    }
    if used {
        revoke_family(conn, family_id).await?;
        return Ok(Rotation::Reused { user_id, family_id });
    }
    if !live {
        return Ok(Rotation::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1").bind(id).execute(&mut *conn).await?;
    let next = RefreshToken::generate();
    // The successor keeps the family's absolute end of life.
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
         SELECT $1, user_id, family_id, $2, expires_at FROM refresh_tokens WHERE id = $3",
    )
    .bind(Uuid::now_v7())
    .bind(next.digest())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(Rotation::Rotated { user_id, family_id, token: next })
}

async fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Logout of the session `session_id` of `user_id` (access tokens naming it
/// stop at once).
pub async fn end_session(conn: &mut PgConnection, user_id: Uuid, session_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(user_id)
    .execute(conn)
    .await
    .map(|r| r.rows_affected() > 0)
}

/// Logout: revokes the family of `token` if it belongs to `user_id`.
pub async fn end(conn: &mut PgConnection, user_id: Uuid, token: &RefreshToken) -> Result<bool, sqlx::Error> {
    let family: Option<Uuid> =
        sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2")
            .bind(token.digest())
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    match family {
        Some(family_id) => revoke_family(conn, family_id).await.map(|_| true),
        None => Ok(false),
    }
}

/// The user and session (family) of a console cookie. The cookie holds a
/// refresh token of its family that the console never rotates, so it lives
/// while that token is unused, unrevoked and unexpired: logout, a password
/// reset, disabling and reuse revocation all end it with the family.
///
/// The cookie is HttpOnly: its holder never sees the token, so a token found
/// used was refreshed by someone who copied it. That is reuse, and, as in
/// [`rotate`], the whole family is revoked, the copier's new tokens with it.
pub async fn live(conn: &mut PgConnection, token: &RefreshToken) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    let row: Option<(Uuid, Uuid, bool, bool)> = sqlx::query_as(
        "SELECT user_id, family_id, used_at IS NOT NULL, revoked_at IS NULL AND expires_at > now()
         FROM refresh_tokens WHERE token_hash = $1",
    )
    .bind(token.digest())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((user_id, family_id, false, true)) => Ok(Some((user_id, family_id))),
        Some((_, family_id, true, true)) => revoke_family(conn, family_id).await.map(|()| None),
        _ => Ok(None),
    }
}

/// Revokes every session of `user_id` (password reset, disabling).
pub async fn end_all(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .execute(conn)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bits_and_only_well_formed_ones_are_accepted_back() {
        let token = RefreshToken::generate();
        assert_eq!(URL_SAFE_NO_PAD.decode(token.expose()).unwrap().len(), 32);
        assert!(RefreshToken::from_client(token.expose()).is_some());
        assert_ne!(token, RefreshToken::generate());
        for bad in ["", "short", &"A".repeat(44), &"!".repeat(43)] {
            assert!(RefreshToken::from_client(bad).is_none(), "{bad}");
        }
    }
}
