//! Sessions as the API hands them out: token pairs, their rotation, logout,
//! and the signed-in caller behind an access token.

use std::time::Duration;

use serde_json::json;
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;

use super::sessions::{self, RefreshToken, Rotation};
use super::users::{self, User};
use super::{Accounts, Internal, audit_user};
use crate::audit::{Actor, Party};
use crate::db::{DbError, During};

/// A started or rotated session: a short-lived access token and the refresh
/// token that renews it.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: RefreshToken,
    /// How long the access token is valid.
    pub expires_in: Duration,
}

/// The caller an access token names, with the session it belongs to.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    /// The session (refresh-token family) the access token names.
    pub session_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, revoked, used (its family is then revoked), or its
    /// account disabled.
    #[error("the refresh token is invalid, expired or used")]
    Invalid,
    /// Exchanged a moment ago by a racing request, whose tokens stand.
    #[error("this refresh token was just exchanged by another request")]
    InProgress,
    #[error(transparent)]
    Internal(#[from] Internal),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why an access token opens nothing.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Malformed, expired, revoked, of an ended session or a disabled account.
    #[error("invalid or expired access token")]
    InvalidToken,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl Accounts {
    /// Starts a session for `user` in the caller's transaction.
    pub(super) async fn issue_tokens<E: From<Internal> + From<DbError>>(
        &self,
        conn: &mut PgConnection,
        user: &User,
    ) -> Result<TokenPair, E> {
        let session = sessions::start(conn, user.id, self.config.refresh_token_ttl).await.during("start a session")?;
        Ok(self.pair(user, session.id, session.token)?)
    }

    /// A fresh access token for `user` in session `session_id`, alongside `refresh`.
    fn pair(&self, user: &User, session_id: Uuid, refresh: RefreshToken) -> Result<TokenPair, Internal> {
        let access_token =
            self.tokens.issue(user.id, user.session_epoch, session_id).map_err(|e| Internal(format!("JWT: {e}")))?;
        Ok(TokenPair { access_token, refresh_token: refresh, expires_in: self.tokens.ttl() })
    }

    /// Rotation: the old token is spent, a new pair returned. A spent token
    /// presented again revokes its whole family and is audited.
    pub async fn refresh(
        &self,
        conn: &mut PgConnection,
        by: &Actor,
        token: &RefreshToken,
    ) -> Result<TokenPair, RefreshError> {
        let mut tx = conn.begin().await.during("begin a transaction")?;
        match sessions::rotate(&mut tx, token).await.during("rotate a refresh token")? {
            Rotation::Rotated { user_id, family_id, token } => {
                let user = users::by_id(&mut tx, user_id).await.during("load a user")?.filter(|u| !u.is_disabled());
                let Some(user) = user else {
                    return Err(RefreshError::Invalid);
                };
                let pair = self.pair(&user, family_id, token)?;
                tx.commit().await.during("commit a rotation")?;
                Ok(pair)
            }
            Rotation::Reused { user_id, family_id } => {
                let after = json!({ "revoked_family": family_id });
                audit_user(&mut tx, by, "auth.refresh_reuse", user_id, Some(after)).await?;
                tx.commit().await.during("commit a revocation")?;
                tracing::warn!(%user_id, %family_id, "refresh token reused; session family revoked");
                Err(RefreshError::Invalid)
            }
            Rotation::JustUsed => Err(RefreshError::InProgress),
            Rotation::Invalid => Err(RefreshError::Invalid),
        }
    }

    /// The signed-in caller behind `access_token`. Role, disabled state,
    /// session epoch and the session's revocation are read from the database
    /// on every call (one query), so changes and logouts apply at once.
    pub async fn signed_in(&self, db: &PgPool, access_token: &str) -> Result<SignedIn, AccessError> {
        let claims = self.tokens.verify(access_token).map_err(|_| AccessError::InvalidToken)?;
        let mut conn = db.acquire().await.during("connect")?;
        let user = users::by_session(&mut conn, claims.sub, claims.sid)
            .await
            .during("load the user of a session")?
            .ok_or(AccessError::InvalidToken)?;
        if user.is_disabled() || user.session_epoch != claims.ep {
            return Err(AccessError::InvalidToken);
        }
        Ok(SignedIn { user, session_id: claims.sid })
    }
}

/// Ends the caller's session (the one its access token names, whose access
/// tokens stop at once) and the session `refresh` belongs to. Idempotent.
pub async fn logout(
    conn: &mut PgConnection,
    by: &Actor,
    signed_in: &SignedIn,
    refresh: Option<&RefreshToken>,
) -> Result<(), DbError> {
    let user_id = signed_in.user.id;
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let mut ended = sessions::end_session(&mut tx, user_id, signed_in.session_id).await.during("end a session")?;
    if let Some(token) = refresh {
        ended |= sessions::end(&mut tx, user_id, token).await.during("end a refresh token's session")?;
    }
    if ended {
        audit_user(&mut tx, &by.as_party(Party::User(user_id)), "auth.logout", user_id, None).await?;
    }
    tx.commit().await.during("commit a logout")
}
