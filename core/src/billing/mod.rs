//! Billing: a stored item costs its locker size's tariff for every started
//! hour, counted from `stored_at` (hour n is [stored_at + n h, stored_at +
//! (n + 1) h)). The ledger has one charge line per item and hour, unique on
//! (item, hour), so no run or repeat charges twice; closing an item's bill
//! writes its one transaction, whose amount is the sum of its lines.
//!
//! - [`tariffs`]: what an hour costs per locker size (table rows, then configuration).
//! - [`accrual`]: the hourly run that charges the hours open items have started.
//! - [`close`](mod@close): settling an item's bill, once.
//! - [`so_far`](mod@so_far): what an item has cost up to a moment, for item views.
//! - [`ledger`]: the settled transactions, read back for users and admins.
//!
//! Money is integer minor units with its currency ([`Money`]); no float
//! touches an amount anywhere, here or in the API.

pub mod accrual;
pub mod close;
pub mod ledger;
pub mod so_far;
pub mod tariffs;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use accrual::{AccrualReport, accrue};
pub use close::{Bill, close, settled};
pub use so_far::{Accrued, so_far};
pub use tariffs::{DefaultTariff, PriceList, SizeTariffs, Tariffs};

/// The advisory lock an accrual run holds exclusive for its transaction and
/// every close takes shared before it settles ("BILL"): closes never wait for
/// each other, a close waits at most for one run, and runs queue.
pub const ACCRUAL_LOCK: i64 = 0x4249_4C4C;

/// An amount of money in minor units (paise for INR): never a float.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"minor": 5000, "currency": "INR"}))]
pub struct Money {
    pub minor: i64,
    /// ISO 4217, e.g. `INR` (validated where it enters: CURRENCY at start-up,
    /// the CHECKs on every currency column).
    pub currency: String,
}

impl Money {
    pub fn new(minor: i64, currency: impl Into<String>) -> Self {
        Self { minor, currency: currency.into() }
    }

    pub fn zero(currency: impl Into<String>) -> Self {
        Self::new(0, currency)
    }

    /// The sum, when both are in one currency and it fits in i64.
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Money::new(minor, self.currency.clone()))
    }

    /// `hours` hours at this price, if it fits in i64.
    pub fn checked_times(&self, hours: i64) -> Option<Money> {
        self.minor.checked_mul(hours).map(|minor| Money::new(minor, self.currency.clone()))
    }
}

impl std::fmt::Display for Money {
    /// `INR 50.00`: two decimals, as INR and most currencies have.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        write!(f, "{} {sign}{}.{:02}", self.currency, abs / 100, abs % 100)
    }
}

/// The started hours of a stay from `stored_at` to `ended_at`: at least one
/// (an item stored is an hour started).
pub fn started_hours(stored_at: DateTime<Utc>, ended_at: DateTime<Utc>) -> i64 {
    let millis = (ended_at - stored_at).num_milliseconds().max(0);
    ((millis + 3_600_000 - 1) / 3_600_000).max(1)
}

/// When hour `n` of a stay begins.
pub fn hour_start(stored_at: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    stored_at + chrono::Duration::hours(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn inr() -> String {
        "INR".to_owned()
    }

    #[test]
    fn every_started_hour_counts_once() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let after = |secs: i64| t0 + chrono::Duration::seconds(secs);
        assert_eq!(started_hours(t0, after(0)), 1);
        assert_eq!(started_hours(t0, after(60)), 1);
        assert_eq!(started_hours(t0, after(3600)), 1);
        assert_eq!(started_hours(t0, after(3601)), 2);
        assert_eq!(started_hours(t0, after(3660)), 2);
        assert_eq!(started_hours(t0, after(3 * 24 * 3600)), 72);
        assert_eq!(started_hours(t0, after(-60)), 1, "an end before the start still bills the started hour");
        assert_eq!(hour_start(t0, 2), after(7200));
    }

    #[test]
    fn money_prints_in_major_units() {
        assert_eq!(Money::new(5000, inr()).to_string(), "INR 50.00");
        assert_eq!(Money::new(360_005, inr()).to_string(), "INR 3600.05");
        assert_eq!(Money::new(-5, inr()).to_string(), "INR -0.05");
    }

    #[test]
    fn sums_stay_in_one_currency_and_in_range() {
        let a = Money::new(5000, "INR");
        assert_eq!(a.checked_add(&Money::new(1, "INR")), Some(Money::new(5001, "INR")));
        assert_eq!(a.checked_add(&Money::new(1, "USD")), None, "no sum across currencies");
        assert_eq!(Money::new(i64::MAX, "INR").checked_add(&Money::new(1, "INR")), None);
        assert_eq!(a.checked_times(72), Some(Money::new(360_000, "INR")));
        assert_eq!(a.checked_times(i64::MAX), None);
    }
}
