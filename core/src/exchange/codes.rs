//! Codes typed at a locker point: drop-off, pickup and return. The same
//! mechanism as every one-time code (6 CSPRNG digits, a keyed hash, 5 wrong
//! tries, single use by a conditional update) with one addition: a person at
//! the point types only the code, so live codes are unique within a point
//! and found by a point-scoped lookup hash, HMAC(pepper, point || code).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::config::Secret;
use crate::db::{DbError, During};
use crate::messaging::otp::{Code, MAX_TRIES};

/// What a point code is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointPurpose {
    /// The sender's, shown at deposit; lives until the drop-off deadline.
    Dropoff,
    /// The receiver's.
    Pickup,
    /// The sender's, for an expired item.
    Return,
}

impl PointPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            PointPurpose::Dropoff => "dropoff",
            PointPurpose::Pickup => "pickup",
            PointPurpose::Return => "return",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [PointPurpose::Dropoff, PointPurpose::Pickup, PointPurpose::Return].into_iter().find(|p| p.as_str() == raw)
    }
}

/// HMAC-SHA256(pepper, "point" || point id || code).
fn lookup(pepper: &Secret, point_id: Uuid, code: &Code) -> Vec<u8> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(pepper.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(b"point");
    mac.update(point_id.as_bytes());
    mac.update(code.expose().as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// What retiring codes is: live ones are consumed, unused. The start of an
/// `UPDATE` whose caller names which codes after it: [`retire`], and the
/// transitions that retire their item's codes in the statement recording
/// them. A literal, for `concat!`.
macro_rules! retire_live {
    () => {
        "UPDATE one_time_codes SET consumed_at = now() WHERE consumed_at IS NULL AND "
    };
}
pub(crate) use retire_live;

/// Kills the live codes of `item_id` of these `purposes` (every purpose when
/// empty), in the caller's transaction: an item that moved on opens nothing.
pub async fn retire(conn: &mut PgConnection, item_id: Uuid, purposes: &[PointPurpose]) -> Result<(), DbError> {
    let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    sqlx::query(concat!(retire_live!(), "item_id = $1 AND (cardinality($2::text[]) = 0 OR purpose = ANY($2))"))
        .bind(item_id)
        .bind(&purposes)
        .execute(conn)
        .await
        .during("retire an item's codes")?;
    Ok(())
}

/// Issues a code for `item_id` at `point_id`, valid until `valid_until`,
/// retiring the item's earlier live codes of the same purpose (one live code
/// per item and purpose), in the caller's transaction. `contact` is where it
/// goes (kept for the record). The caller sends or shows the code.
pub async fn issue(
    conn: &mut PgConnection,
    pepper: &Secret,
    point_id: Uuid,
    item_id: Uuid,
    purpose: PointPurpose,
    contact: &str,
    valid_until: DateTime<Utc>,
) -> Result<Code, DbError> {
    // A fresh code collides with a live one at the point with a chance of
    // (live codes) in a million; draw again then. Dead codes (expired, out of
    // tries) that collide are retired first: they hold their slot until used.
    // One statement retires the item's live code of this purpose and a dead
    // one in the way, then writes the new code (the insert reads `retired`
    // first, so the update has run; a row it retired no longer conflicts,
    // since the arbiter index sees it deleted by this transaction).
    for _ in 0..16 {
        let code = Code::generate();
        let hash = lookup(pepper, point_id, &code);
        let written = sqlx::query(concat!(
            "WITH retired AS (",
            retire_live!(),
            "((item_id = $4 AND purpose = $2)
                   OR (point_id = $5 AND lookup = $6 AND (expires_at <= now() OR failed_tries >= $8)))
                 RETURNING 1)
                 INSERT INTO one_time_codes (id, purpose, contact, item_id, point_id, lookup, code_hash, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, $6, $7 WHERE (SELECT count(*) FROM retired) >= 0
                 ON CONFLICT (point_id, lookup) WHERE consumed_at IS NULL AND point_id IS NOT NULL DO NOTHING"
        ))
        .bind(Uuid::now_v7())
        .bind(purpose.as_str())
        .bind(contact)
        .bind(item_id)
        .bind(point_id)
        .bind(&hash)
        .bind(valid_until)
        .bind(MAX_TRIES)
        .execute(&mut *conn)
        .await
        .during("write a point code")?;
        if written.rows_affected() == 1 {
            return Ok(code);
        }
    }
    Err(DbError {
        operation: "find a free point code",
        source: sqlx::Error::Protocol("sixteen draws all collided with live codes".into()),
    })
}

/// A redeemed code: the item it opens and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemed {
    pub item_id: Uuid,
    pub purpose: PointPurpose,
}

/// Why a typed code did not work. Callers answer all of them alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No live code of these purposes matches (wrong, expired, used, out of tries).
    Wrong,
    /// Right code, but a concurrent redemption won.
    AlreadyUsed,
}

/// Redeems `code` typed at `point_id` for one of `purposes`; with `locker_id`,
/// only a code of the item in that locker. On success the code is consumed
/// (a conditional update: of racing redemptions exactly one wins). A wrong
/// code typed at a locker counts a try against the live codes of that
/// locker's item (5 and they are dead); at a point it names no item, so the
/// caller's per-point and per-address limits bound the guessing.
pub async fn redeem(
    conn: &mut PgConnection,
    pepper: &Secret,
    point_id: Uuid,
    locker_id: Option<Uuid>,
    purposes: &[PointPurpose],
    code: Option<&Code>,
) -> Result<Result<Redeemed, Rejected>, DbError> {
    let purposes: Vec<&str> = purposes.iter().map(|p| p.as_str()).collect();
    let found: Option<(Uuid, Uuid, String)> = match code {
        None => None,
        Some(code) => sqlx::query_as(
            "SELECT c.id, c.item_id, c.purpose FROM one_time_codes c JOIN items i ON i.id = c.item_id
             WHERE c.point_id = $1 AND c.lookup = $2 AND c.purpose = ANY($3)
               AND c.consumed_at IS NULL AND c.expires_at > now() AND c.failed_tries < $4
               AND ($5::uuid IS NULL OR i.locker_id = $5)",
        )
        .bind(point_id)
        .bind(lookup(pepper, point_id, code))
        .bind(&purposes)
        .bind(MAX_TRIES)
        .bind(locker_id)
        .fetch_optional(&mut *conn)
        .await
        .during("look up a point code")?,
    };
    let Some((id, item_id, purpose)) = found else {
        if let Some(locker_id) = locker_id {
            sqlx::query(
                "UPDATE one_time_codes SET failed_tries = failed_tries + 1
                 WHERE purpose = ANY($2) AND consumed_at IS NULL AND failed_tries < $3
                   AND item_id IN (SELECT id FROM items WHERE locker_id = $1 AND status IN ('reserved', 'stored', 'expired'))",
            )
            .bind(locker_id)
            .bind(&purposes)
            .bind(MAX_TRIES)
            .execute(&mut *conn)
            .await
            .during("count a wrong code")?;
        }
        return Ok(Err(Rejected::Wrong));
    };
    let won = sqlx::query(
        "UPDATE one_time_codes SET consumed_at = now()
         WHERE id = $1 AND consumed_at IS NULL AND expires_at > now() AND failed_tries < $2",
    )
    .bind(id)
    .bind(MAX_TRIES)
    .execute(&mut *conn)
    .await
    .during("redeem a point code")?;
    if won.rows_affected() == 0 {
        return Ok(Err(Rejected::AlreadyUsed));
    }
    let purpose = PointPurpose::parse(&purpose).ok_or(DbError {
        operation: "read a point code",
        source: sqlx::Error::Protocol(format!("unexpected purpose `{purpose}`")),
    })?;
    Ok(Ok(Redeemed { item_id, purpose }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_depends_on_pepper_point_and_code() {
        let (a, b) = (Secret::new("pepper-a"), Secret::new("pepper-b"));
        let (p, q) = (Uuid::now_v7(), Uuid::now_v7());
        let code = Code::parse("123456").unwrap();
        assert_eq!(lookup(&a, p, &code), lookup(&a, p, &code));
        assert_ne!(lookup(&a, p, &code), lookup(&b, p, &code));
        assert_ne!(lookup(&a, p, &code), lookup(&a, q, &code));
        assert_ne!(lookup(&a, p, &code), lookup(&a, p, &Code::parse("123457").unwrap()));
    }
}
