//! One-time codes, one mechanism for every purpose (verification, login,
//! password reset, pickup, return): 6 digits from a CSPRNG, stored only as an
//! HMAC keyed with the server's pepper, valid 10 minutes, dead after 5 wrong
//! tries, and usable once: redemption is a conditional UPDATE, so two
//! concurrent redemptions cannot both win.

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::config::Secret;

/// How long a code is valid.
pub const VALIDITY: Duration = Duration::from_secs(10 * 60);
/// Wrong tries after which a code is dead.
pub const MAX_TRIES: i32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Verify,
    Login,
    Reset,
    Pickup,
    Return,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Verify => "verify",
            Purpose::Login => "login",
            Purpose::Reset => "reset",
            Purpose::Pickup => "pickup",
            Purpose::Return => "return",
        }
    }
}

/// A code as typed by a person: exactly six ASCII digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        (s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())).then(|| Self(s.to_owned()))
    }

    /// A fresh, uniformly random code.
    pub fn generate() -> Self {
        Self(format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(***)")
    }
}

/// HMAC-SHA256(pepper, id || code): the id binds the hash to its row.
fn digest(pepper: &Secret, id: Uuid, code: &Code) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(pepper.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(code.expose().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What a code is attached to, besides its contact.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject {
    pub user_id: Option<Uuid>,
    pub item_id: Option<Uuid>,
}

/// Issues a new code for `contact` and `purpose`, retiring earlier live ones
/// of the same subject (user and item), in the caller's transaction. Codes of
/// other accounts stay: several accounts may hold one unverified phone, and
/// one of them asking for a code must not kill another's. The caller sends
/// the returned code.
pub async fn issue(
    conn: &mut PgConnection,
    pepper: &Secret,
    purpose: Purpose,
    contact: &str,
    subject: Subject,
) -> Result<Code, sqlx::Error> {
    sqlx::query(
        "UPDATE one_time_codes SET consumed_at = now()
         WHERE purpose = $1 AND contact = $2 AND consumed_at IS NULL
           AND user_id IS NOT DISTINCT FROM $3 AND item_id IS NOT DISTINCT FROM $4",
    )
    .bind(purpose.as_str())
    .bind(contact)
    .bind(subject.user_id)
    .bind(subject.item_id)
    .execute(&mut *conn)
    .await?;
    let id = Uuid::now_v7();
    let code = Code::generate();
    sqlx::query(
        "INSERT INTO one_time_codes (id, purpose, contact, user_id, item_id, code_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
    )
    .bind(id)
    .bind(purpose.as_str())
    .bind(contact)
    .bind(subject.user_id)
    .bind(subject.item_id)
    .bind(digest(pepper, id, &code))
    .bind(VALIDITY.as_secs_f64())
    .execute(&mut *conn)
    .await?;
    Ok(code)
}

/// Why a code did not work. Callers answer all of them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No live code (never issued, expired, used, or out of tries).
    NoLiveCode,
    Wrong,
    /// Right code, but a concurrent redemption won.
    AlreadyUsed,
}

/// Redeems the newest live code for `contact` and `purpose` within `subject`:
/// only codes issued for its user and item, where given (a phone's codes are
/// redeemed only by the account they were issued for). On success the code is
/// consumed and its subject returned.
pub async fn redeem(
    conn: &mut PgConnection,
    pepper: &Secret,
    purpose: Purpose,
    contact: &str,
    within: Subject,
    code: &Code,
) -> Result<Result<Subject, Rejected>, sqlx::Error> {
    let live: Option<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT id, code_hash FROM one_time_codes
         WHERE purpose = $1 AND contact = $2
           AND ($3::uuid IS NULL OR user_id = $3) AND ($4::uuid IS NULL OR item_id = $4)
           AND consumed_at IS NULL AND expires_at > now() AND failed_tries < $5
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(purpose.as_str())
    .bind(contact)
    .bind(within.user_id)
    .bind(within.item_id)
    .bind(MAX_TRIES)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((id, stored)) = live else {
        return Ok(Err(Rejected::NoLiveCode));
    };
    let matches: bool = digest(pepper, id, code).ct_eq(&stored).into();
    if !matches {
        sqlx::query("UPDATE one_time_codes SET failed_tries = failed_tries + 1 WHERE id = $1 AND failed_tries < $2")
            .bind(id)
            .bind(MAX_TRIES)
            .execute(&mut *conn)
            .await?;
        return Ok(Err(Rejected::Wrong));
    }
    // The conditions again: only one redemption can flip consumed_at.
    let won: Option<(Option<Uuid>, Option<Uuid>)> = sqlx::query_as(
        "UPDATE one_time_codes SET consumed_at = now()
         WHERE id = $1 AND consumed_at IS NULL AND expires_at > now() AND failed_tries < $2
         RETURNING user_id, item_id",
    )
    .bind(id)
    .bind(MAX_TRIES)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match won {
        Some((user_id, item_id)) => Ok(Subject { user_id, item_id }),
        None => Err(Rejected::AlreadyUsed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1000 {
            let code = Code::generate();
            assert!(Code::parse(code.expose()).is_some(), "{}", code.expose());
        }
        for bad in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
            assert!(Code::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Code::parse(" 012345 ").map(|c| c.expose().to_owned()).as_deref(), Some("012345"));
    }

    #[test]
    fn the_digest_depends_on_pepper_row_and_code() {
        let (a, b) = (Secret::new("pepper-a"), Secret::new("pepper-b"));
        let id = Uuid::now_v7();
        let code = Code::parse("123456").unwrap();
        assert_eq!(digest(&a, id, &code), digest(&a, id, &code));
        assert_ne!(digest(&a, id, &code), digest(&b, id, &code));
        assert_ne!(digest(&a, id, &code), digest(&a, Uuid::now_v7(), &code));
        assert_ne!(digest(&a, id, &code), digest(&a, id, &Code::parse("123457").unwrap()));
    }

    #[test]
    fn codes_do_not_show_in_debug_output() {
        assert_eq!(format!("{:?}", Code::parse("123456").unwrap()), "Code(***)");
    }
}
