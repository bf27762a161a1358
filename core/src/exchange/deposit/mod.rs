//! The deposit side of an exchange: a verified sender reserves a locker
//! ([`reserve`]); the door opens only when they stand in front of it
//! ([`drop_off`] from the app, [`drop_off_by_code`] at the point's screen);
//! the controller's `door_closed` stores the item ([`door_closed`]). A
//! reservation ends early when the sender cancels ([`cancel`]), its drop-off
//! deadline passes with the door never asked to open ([`expire_reservations`]),
//! or the deposit open fails for good ([`door_failed`]). A drop-off door left
//! open is the sweep's to report ([`doors_left_open`]).
//!
//! A door left open: the item stays `reserved` (the parcel may or may not be
//! inside, so nothing is cancelled and the reservation sweep never touches
//! it), the locker goes to `maintenance` and admins are alerted once. A late
//! `door_closed` still stores the item (the locker becomes `occupied`); else
//! an admin force-clears the locker, which cancels the reservation.

use std::time::Duration;

use uuid::Uuid;

use crate::accounts::contact::{Email, Phone};
use crate::config::{Config, DoorDriver, Secret};
use crate::places::lockers::Size;
use crate::rate_limit::{Limit, RateLimiter};

const HOUR: Duration = Duration::from_secs(60 * 60);

/// Wrong drop-off codes typed at one point per hour, from every screen and
/// address together. Live drop-off codes at a point are at most its lockers
/// (one per reservation), so with L lockers reserved a day of guessing there
/// finds one with a chance of at most 24 x 20 x L / 10^6 (0.05 % per reserved
/// locker); a found code only opens an empty locker for a drop-off.
const WRONG_DROPOFF_CODES_PER_POINT: Limit = Limit::per(20, HOUR);

/// Wrong drop-off codes per client address (its /64 for IPv6) per hour.
const WRONG_DROPOFF_CODES_PER_IP: Limit = Limit::per(10, HOUR);

/// What the deposit use cases need from the configuration and the process.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// Keys the drop-off codes' hashes (`OTP_PEPPER`).
    pub pepper: &'a Secret,
    /// Counts wrong drop-off codes.
    pub limiter: &'a RateLimiter,
    /// `DROPOFF_WINDOW_SECS`.
    pub dropoff_window: Duration,
    /// `PICKUP_WINDOW_SECS`, fixed on the item at deposit.
    pub pickup_window: Duration,
    /// `MAX_OPEN_RESERVATIONS`.
    pub max_open_reservations: u32,
    /// Under simulated doors every point is online.
    pub doors_simulated: bool,
}

impl<'a> Rules<'a> {
    pub fn new(config: &Config, pepper: &'a Secret, limiter: &'a RateLimiter) -> Self {
        Self {
            pepper,
            limiter,
            dropoff_window: config.dropoff_window,
            pickup_window: config.pickup_window,
            max_open_reservations: config.max_open_reservations,
            doors_simulated: config.door_driver == DoorDriver::Simulated,
        }
    }
}

// Input ---------------------------------------------------------------------------

/// What the item is called: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemName(String);

impl ItemName {
    pub fn parse(raw: &str) -> Option<Self> {
        let s = raw.trim();
        let ok = (1..=200).contains(&s.chars().count()) && !s.chars().any(char::is_control);
        ok.then(|| Self(s.to_owned()))
    }
}

/// A free-text description: at most 2000 characters; blank means none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    /// `Ok(None)` for blank text; `Err` when too long.
    pub fn parse(raw: &str) -> Result<Option<Self>, DescriptionTooLong> {
        let s = raw.trim();
        match s.chars().count() {
            0 => Ok(None),
            1..=2000 => Ok(Some(Self(s.to_owned()))),
            _ => Err(DescriptionTooLong),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a description is at most 2000 characters")]
pub struct DescriptionTooLong;

/// Who the item is for: a phone, an email, or both; never neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    phone: Option<Phone>,
    email: Option<Email>,
}

impl Receiver {
    pub fn new(phone: Option<Phone>, email: Option<Email>) -> Option<Self> {
        (phone.is_some() || email.is_some()).then_some(Self { phone, email })
    }
}

/// Where to reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// This locker.
    Locker(Uuid),
    /// Any available locker of `size` at the point; with `allow_larger`, the
    /// smallest larger size when none of `size` is free.
    Point { point_id: Uuid, size: Size, allow_larger: bool },
}

#[derive(Debug, Clone)]
pub struct NewDeposit {
    pub place: Place,
    pub name: ItemName,
    pub description: Option<Description>,
    pub receiver: Receiver,
}

fn size_code(size: Size) -> &'static str {
    match size {
        Size::S => "S",
        Size::M => "M",
        Size::L => "L",
        Size::Xl => "XL",
    }
}

/// The sizes to try, in order: `size`, then (with `allow_larger`) each larger one.
pub fn sizes_to_try(size: Size, allow_larger: bool) -> Vec<&'static str> {
    let all = [Size::S, Size::M, Size::L, Size::Xl];
    let from = all.iter().position(|s| *s == size).unwrap_or(0);
    let to = if allow_larger { all.len() } else { from + 1 };
    all[from..to].iter().map(|s| size_code(*s)).collect()
}

mod cancel;
mod dropoff;
mod messages;
mod outcomes;
mod reserve;

pub use cancel::*;
pub use dropoff::*;
pub(crate) use messages::*;
pub use outcomes::*;
pub use reserve::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_sizes_are_tried_only_when_allowed_smallest_first() {
        assert_eq!(sizes_to_try(Size::M, false), vec!["M"]);
        assert_eq!(sizes_to_try(Size::M, true), vec!["M", "L", "XL"]);
        assert_eq!(sizes_to_try(Size::Xl, true), vec!["XL"]);
        assert_eq!(sizes_to_try(Size::S, true), vec!["S", "M", "L", "XL"]);
    }

    #[test]
    fn names_descriptions_and_receivers_parse_on_the_way_in() {
        assert!(ItemName::parse("  Books ").is_some_and(|n| n.0 == "Books"));
        assert!(ItemName::parse("   ").is_none());
        assert!(ItemName::parse("a\u{0}b").is_none());
        assert!(ItemName::parse(&"x".repeat(201)).is_none());
        assert_eq!(Description::parse("  "), Ok(None));
        assert!(Description::parse(&"x".repeat(2001)).is_err());
        assert!(Receiver::new(None, None).is_none());
        assert!(Receiver::new(Phone::parse("+919876543210").ok(), None).is_some());
    }
}
