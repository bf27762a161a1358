//! Enrolling a locker point's screen: an admin issues a one-time code (or
//! the link that carries it); the screen redeems it and receives a fresh
//! kiosk token, which it keeps to itself (a cookie), so nobody at the point
//! ever types a credential.
//!
//! A code is 16 characters of Crockford base32 (80 random bits), valid for
//! [`VALIDITY`], usable once; only its SHA-256 is stored. Redeeming is a
//! conditional update, so of two racing redemptions exactly one wins; issuing
//! a new code for a point retires the point's earlier live ones.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::credentials::{KioskToken, replace_kiosk_token};
use super::{PlaceError, PlaceKind};
use crate::audit::{Actor, Entry, audited};
use crate::db::{DbError, During};

/// How long an enrolment code works.
pub const VALIDITY: Duration = Duration::from_secs(10 * 60);

/// Crockford's base32: no I, L, O or U, so a code read aloud or typed is unambiguous.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const LENGTH: usize = 16;

/// A one-time enrolment code, in canonical form (16 upper-case characters).
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentCode(String);

impl std::fmt::Debug for EnrolmentCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnrolmentCode(..)")
    }
}

impl EnrolmentCode {
    fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        Self((0..LENGTH).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect())
    }

    /// A typed or linked code: case, spaces and dashes do not matter, and the
    /// look-alikes O, I and L read as 0, 1 and 1.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut code = String::with_capacity(LENGTH);
        for c in raw.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || code.len() == LENGTH {
                return None;
            }
            code.push(c);
        }
        (code.len() == LENGTH).then_some(Self(code))
    }

    /// For people: groups of four, e.g. `7KQ2-M9XD-4TRB-0HZC`.
    pub fn display(&self) -> String {
        let groups: Vec<&str> = (0..LENGTH).step_by(4).filter_map(|at| self.0.get(at..at + 4)).collect();
        groups.join("-")
    }

    fn digest(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// An issued enrolment: the code, shown to the admin this once.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub point_id: Uuid,
    pub code: EnrolmentCode,
    pub expires_at: DateTime<Utc>,
}

/// Why a screen's enrolment did not work.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    /// Wrong, expired, already used, retired, or another point's: one answer for all.
    #[error("the enrolment code is wrong, expired or already used")]
    InvalidCode,
    #[error(transparent)]
    Place(#[from] PlaceError),
}

impl From<DbError> for EnrolmentError {
    fn from(e: DbError) -> Self {
        Self::Place(e.into())
    }
}

/// An admin issues a code that enrols `point_id`'s screen within
/// [`VALIDITY`]; the point's earlier live codes stop working. Audited.
pub async fn issue(conn: &mut PgConnection, by: &Actor, point_id: Uuid) -> Result<Enrolment, PlaceError> {
    audited(conn, by, async |tx| {
        sqlx::query("UPDATE kiosk_enrolments SET redeemed_at = now() WHERE point_id = $1 AND redeemed_at IS NULL")
            .bind(point_id)
            .execute(&mut *tx)
            .await
            .during("retire a point's enrolment codes")?;
        let code = EnrolmentCode::generate();
        let expires_at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "INSERT INTO kiosk_enrolments (id, point_id, code_hash, expires_at)
             SELECT $1, id, $3, now() + make_interval(secs => $4) FROM locker_points WHERE id = $2
             RETURNING expires_at",
        )
        .bind(Uuid::now_v7())
        .bind(point_id)
        .bind(code.digest())
        .bind(VALIDITY.as_secs_f64())
        .fetch_optional(&mut *tx)
        .await
        .during("issue an enrolment code")?;
        let expires_at = expires_at.ok_or(PlaceError::NotFound(PlaceKind::Point))?;
        let after = json!({ "expires_at": expires_at });
        let entry =
            Entry::change("locker_point.issue_kiosk_enrolment", "locker_point", point_id, None::<&()>, Some(&after));
        Ok((Enrolment { point_id, code, expires_at }, entry))
    })
    .await
}

/// The screen of `point_id` redeems `raw_code`: the point gets a new kiosk
/// token (the previous one stops working), returned for the screen to keep.
/// Audited as the screen's enrolment, with the caller's address.
pub async fn redeem(
    conn: &mut PgConnection,
    by: &Actor,
    point_id: Uuid,
    raw_code: &str,
) -> Result<KioskToken, EnrolmentError> {
    let code = EnrolmentCode::parse(raw_code).ok_or(EnrolmentError::InvalidCode)?;
    audited(conn, by, async |tx| {
        let enrolment: Option<Uuid> = sqlx::query_scalar(
            "UPDATE kiosk_enrolments SET redeemed_at = now()
             WHERE code_hash = $1 AND point_id = $2 AND redeemed_at IS NULL AND expires_at > now()
             RETURNING id",
        )
        .bind(code.digest())
        .bind(point_id)
        .fetch_optional(&mut *tx)
        .await
        .during("redeem an enrolment code")?;
        let enrolment = enrolment.ok_or(EnrolmentError::InvalidCode)?;
        let token = replace_kiosk_token(tx, point_id).await?;
        let after = json!({ "enrolment_id": enrolment });
        let entry = Entry::change("locker_point.kiosk_enrolled", "locker_point", point_id, None::<&()>, Some(&after));
        Ok((token, entry))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_parse_back_from_their_display_form() {
        let code = EnrolmentCode::generate();
        let shown = code.display();
        assert_eq!(shown.len(), 19, "{shown}");
        assert_eq!(EnrolmentCode::parse(&shown), Some(code.clone()));
        assert_eq!(EnrolmentCode::parse(&shown.to_lowercase()), Some(code));
        assert_ne!(EnrolmentCode::generate(), EnrolmentCode::generate());
    }

    #[test]
    fn typing_mistakes_that_cannot_be_ambiguous_are_forgiven() {
        let canonical = EnrolmentCode::parse("0123-4567-89AB-CDEF").unwrap();
        assert_eq!(EnrolmentCode::parse(" o123 4567 89ab cdef "), Some(canonical.clone()));
        assert_eq!(EnrolmentCode::parse("O1234567 89ABCDEF"), Some(canonical));
        assert_eq!(EnrolmentCode::parse("0123-4567-89AB-CDE"), None, "too short");
        assert_eq!(EnrolmentCode::parse("0123-4567-89AB-CDEF0"), None, "too long");
        assert_eq!(EnrolmentCode::parse("0123-4567-89AB-CDEU"), None, "U is not in the alphabet");
        assert_eq!(EnrolmentCode::parse("0123-4567-89AB-CDE\u{e9}"), None);
    }
}
