//! Who a locker point's callers are: its controller (the controller token)
//! and its screen (the kiosk token). Both are bearer tokens of which only a
//! SHA-256 is stored; a presented token is found by its hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ControllerToken, PlaceError, PlaceKind};
use crate::audit::{Actor, Entry, audited};
use crate::db::{DbError, During};

/// A point screen's bearer token: shown once, stored as SHA-256.
pub struct KioskToken(String);

impl KioskToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(raw: &str) -> Vec<u8> {
        Sha256::digest(raw.as_bytes()).to_vec()
    }
}

/// The point whose controller holds `raw`, if any.
pub async fn point_of_controller(conn: &mut PgConnection, raw: &str) -> Result<Option<Uuid>, DbError> {
    sqlx::query_scalar("SELECT id FROM locker_points WHERE controller_token_hash = $1")
        .bind(ControllerToken::digest(raw))
        .fetch_optional(conn)
        .await
        .during("find a point by controller token")
}

/// The point whose screen holds `raw`, if any.
pub async fn point_of_kiosk(conn: &mut PgConnection, raw: &str) -> Result<Option<Uuid>, DbError> {
    sqlx::query_scalar("SELECT id FROM locker_points WHERE kiosk_token_hash = $1")
        .bind(KioskToken::digest(raw))
        .fetch_optional(conn)
        .await
        .during("find a point by kiosk token")
}

/// Issues the point's screen a new kiosk token (enrolment or rotation); the
/// previous one stops working at once. Shown to the admin this once.
pub async fn rotate_kiosk_token(conn: &mut PgConnection, by: &Actor, id: Uuid) -> Result<KioskToken, PlaceError> {
    audited(conn, by, async |tx| {
        let token = replace_kiosk_token(tx, id).await?;
        let entry = Entry::change("locker_point.rotate_kiosk_token", "locker_point", id, None::<&()>, None::<&()>);
        Ok((token, entry))
    })
    .await
}

/// The write both ways of getting a kiosk token share (an admin's rotation,
/// a screen's enrolment): a fresh token replaces the point's, in the
/// caller's transaction; the caller audits.
pub(super) async fn replace_kiosk_token(tx: &mut PgConnection, id: Uuid) -> Result<KioskToken, PlaceError> {
    let token = KioskToken::generate();
    let done = sqlx::query("UPDATE locker_points SET kiosk_token_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(KioskToken::digest(token.expose()))
        .execute(&mut *tx)
        .await
        .during("rotate a kiosk token")?;
    if done.rows_affected() == 0 {
        return Err(PlaceError::NotFound(PlaceKind::Point));
    }
    Ok(token)
}
