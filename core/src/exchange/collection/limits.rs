//! The limits of collection, and why each is keyed as it is.
//!
//! Code requests are never limited by the locker (or point) alone, nor by
//! the contact alone, so a stranger cannot block a receiver: a stranger who
//! knows the receiver's phone and locker spends only the allowances of
//! *their own* address, (place, contact, stranger's address) and (contact,
//! stranger's address); the receiver, asking from their own address, has
//! theirs untouched. The issue's "3 per (locker, contact) and 5 per contact
//! per 10 minutes" are therefore counted per address too: 3 per (place,
//! contact, address) and 5 per (contact, address) (the second is the account
//! codes' own limit, shared with them, but without their per-contact ceiling
//! of 40 an hour: a few addresses could spend that and hold the receiver off).
//! A per-address limit over all contacts bounds what one address can make us
//! send, and the hourly SMS budget what texts cost in all.
//!
//! Wrong codes are limited where guessing happens: per locker (or point) and
//! per address. Those limits refuse right codes too while they last (that is
//! what makes them bound guessing), so a stranger can hold a locker's collect
//! off for up to an hour; the trade is deliberate (a delay, never a loss),
//! and each refused collect answers 429 with `Retry-After`.
//!
//! Brute-force bounds (6-digit codes, 10^6 values):
//! - At a locker: at most [`WRONG_PER_LOCKER`] (10) guesses an hour, 240 a
//!   day, against at most one live code (the item's pickup or return code,
//!   which also dies after 5 wrong tries): P(guess a live code in a day) <=
//!   240 / 10^6 = 2.4 * 10^-4.
//! - At a point: at most [`WRONG_PER_POINT`] (20) an hour, 480 a day, each
//!   matching any of the point's L live pickup/return codes (a code lives 10
//!   minutes): P <= 480 * L / 10^6 a day; 2.4 * 10^-3 with 5 codes live all
//!   day, 4.8 * 10^-2 in the absurd worst case of 100 doors with live codes
//!   around the clock. And only from the point's own screen (kiosk token).

use std::time::Duration;

use super::Place;
use crate::messaging::codes::RateLimited;
use crate::rate_limit::{Limit, RateLimiter};

const TEN_MINUTES: Duration = Duration::from_secs(10 * 60);
const HOUR: Duration = Duration::from_secs(60 * 60);

/// Code requests per (place, contact, address).
pub const REQUESTS_PER_PLACE_CONTACT_IP: Limit = Limit::per(3, TEN_MINUTES);
/// Code requests per address over all places and contacts. A point's screen
/// is one address for everyone at the point, so it gets more room.
pub const REQUESTS_PER_IP: Limit = Limit::per(20, TEN_MINUTES);
pub const REQUESTS_PER_KIOSK: Limit = Limit::per(120, TEN_MINUTES);
/// Wrong codes per locker, per point, per address.
pub const WRONG_PER_LOCKER: Limit = Limit::per(10, HOUR);
pub const WRONG_PER_POINT: Limit = Limit::per(20, HOUR);
pub const WRONG_PER_IP: Limit = Limit::per(20, HOUR);

fn place_key(place: Place) -> String {
    match place {
        Place::Locker(id) => format!("locker:{id}"),
        Place::Point(id) => format!("point:{id}"),
    }
}

/// Counts one code request (the caller adds the per-(contact, address)
/// limit of `Codes::limit_requests_per_address`). Before any lookup: known and unknown contacts
/// are limited alike.
pub async fn request(limiter: &RateLimiter, place: Place, contact: &str, ip: &str) -> Result<(), RateLimited> {
    let key = format!("pickup_req:{}:{contact}:{ip}", place_key(place));
    RateLimited::check(limiter.hit(&key, REQUESTS_PER_PLACE_CONTACT_IP).await)?;
    let per_ip = if matches!(place, Place::Point(_)) { REQUESTS_PER_KIOSK } else { REQUESTS_PER_IP };
    RateLimited::check(limiter.hit(&format!("pickup_req_ip:{ip}"), per_ip).await)
}

fn wrong_keys(place: Place, ip: &str) -> [(String, Limit); 2] {
    let per_place = if matches!(place, Place::Point(_)) { WRONG_PER_POINT } else { WRONG_PER_LOCKER };
    [(format!("pickup_wrong:{}", place_key(place)), per_place), (format!("pickup_wrong_ip:{ip}"), WRONG_PER_IP)]
}

/// Refuses a collect while the place or the address has spent its wrong codes.
pub async fn may_guess(limiter: &RateLimiter, place: Place, ip: &str) -> Result<(), RateLimited> {
    for (key, limit) in wrong_keys(place, ip) {
        RateLimited::check(limiter.check(&key, limit).await)?;
    }
    Ok(())
}

/// Counts a wrong code against the place and the address.
pub async fn wrong(limiter: &RateLimiter, place: Place, ip: &str) {
    for (key, limit) in wrong_keys(place, ip) {
        limiter.hit(&key, limit).await;
    }
}
