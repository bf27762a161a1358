//! What an hour in a locker costs. Three sources, first match wins:
//!
//! 1. the `tariffs` table: the row for the locker's size with the latest
//!    `valid_from` at or before the hour's start (so a price change applies
//!    to hours that start after it, and history stays priceable);
//! 2. `TARIFFS` in configuration, per size (`S=4000,M=5000,L=6000,XL=8000`);
//! 3. `DEFAULT_TARIFF_PAISE` (5000) in `CURRENCY` (INR) for any other size.
//!
//! The table is for operators changing prices while running; configuration
//! is the deployment's standing price list.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Money, hour_start, started_hours};
use crate::config::Config;
use crate::db::{DbError, During};
use crate::places::lockers::Size;

/// Prices per size from configuration, written `S=4000,M=5000,L=6000,XL=8000`
/// (minor units per started hour); sizes left out use the default tariff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeTariffs(Vec<(Size, i64)>);

impl SizeTariffs {
    pub fn get(&self, size: Size) -> Option<i64> {
        self.0.iter().find(|(s, _)| *s == size).map(|(_, minor)| *minor)
    }
}

/// A size by its code, as the `locker_sizes` table writes it.
pub fn parse_size(code: &str) -> Option<Size> {
    match code {
        "S" => Some(Size::S),
        "M" => Some(Size::M),
        "L" => Some(Size::L),
        "XL" => Some(Size::Xl),
        _ => None,
    }
}

impl FromStr for SizeTariffs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out: Vec<(Size, i64)> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (code, minor) = part.split_once('=').ok_or_else(|| format!("`{part}` is not `size=paise`"))?;
            let size = parse_size(code.trim())
                .ok_or_else(|| format!("`{}` is not a locker size (S, M, L or XL)", code.trim()))?;
            let minor: i64 = minor.trim().parse().ok().filter(|m| *m >= 0).ok_or_else(|| {
                format!("the tariff for `{}` must be a whole number of paise, 0 or more", code.trim())
            })?;
            if out.iter().any(|(s, _)| *s == size) {
                return Err(format!("size `{}` is listed twice", code.trim()));
            }
            out.push((size, minor));
        }
        Ok(Self(out))
    }
}

/// What an hour of a size costs when the `tariffs` table has no row for it:
/// the price list [`close`](super::close), [`so_far`](super::so_far) and
/// [`accrue`](super::accrue) fall back to.
pub trait PriceList {
    /// The price of an hour of `size`.
    fn configured(&self, size: Size) -> Money;
    /// The price of an hour of a size this build does not know.
    fn default_price(&self) -> Money;
}

/// One price for every size: `DEFAULT_TARIFF_PAISE` in `CURRENCY`, or a
/// price recorded when a collect or force-clear was requested (see
/// [`Tariffs::for_size`]) so the acknowledgement bills with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultTariff {
    pub minor_per_hour: i64,
    pub currency: String,
}

impl PriceList for DefaultTariff {
    fn configured(&self, _size: Size) -> Money {
        self.default_price()
    }

    fn default_price(&self) -> Money {
        Money::new(self.minor_per_hour, self.currency.clone())
    }
}

/// The configured price list: `TARIFFS` per size, else `DEFAULT_TARIFF_PAISE`,
/// in `CURRENCY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariffs {
    currency: String,
    default_minor: i64,
    per_size: SizeTariffs,
}

impl Tariffs {
    pub fn new(currency: impl Into<String>, default_minor: i64, per_size: SizeTariffs) -> Self {
        Self { currency: currency.into(), default_minor, per_size }
    }

    /// `TARIFFS`, `DEFAULT_TARIFF_PAISE` and `CURRENCY`, which start-up has
    /// validated (currency format, no negative price).
    pub fn from_config(config: &Config) -> Self {
        Self::new(config.currency.clone(), config.default_tariff_paise, config.tariffs.clone())
    }

    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The configured price of `size` as a one-price list, for callers that
    /// record the price in force when an action is requested.
    pub fn for_size(&self, size: Size) -> DefaultTariff {
        let price = self.configured(size);
        DefaultTariff { minor_per_hour: price.minor, currency: price.currency }
    }
}

impl PriceList for Tariffs {
    fn configured(&self, size: Size) -> Money {
        Money::new(self.per_size.get(size).unwrap_or(self.default_minor), self.currency.clone())
    }

    /// `DEFAULT_TARIFF_PAISE`: the price of a size with no price of its own.
    fn default_price(&self) -> Money {
        Money::new(self.default_minor, self.currency.clone())
    }
}

/// One row of the `tariffs` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TariffRow {
    pub size: Size,
    pub valid_from: DateTime<Utc>,
    pub price: Money,
}

/// Every tariff row, read once per request (the table holds a handful) so a
/// page of items is priced without a query per item.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Newest `valid_from` first.
    rows: Vec<TariffRow>,
}

impl Schedule {
    pub fn new(mut rows: Vec<TariffRow>) -> Self {
        rows.sort_by_key(|r| std::cmp::Reverse(r.valid_from));
        Self { rows }
    }

    pub async fn load(conn: &mut PgConnection) -> Result<Self, DbError> {
        let rows: Vec<(String, DateTime<Utc>, i64, String)> =
            sqlx::query_as("SELECT size, valid_from, amount_paise, currency::text FROM tariffs")
                .fetch_all(conn)
                .await
                .during("read the tariffs")?;
        Ok(Self::new(
            rows.into_iter()
                .filter_map(|(size, valid_from, minor, currency)| {
                    // `size` references `locker_sizes`, whose codes parse_size knows.
                    Some(TariffRow { size: parse_size(&size)?, valid_from, price: Money::new(minor, currency) })
                })
                .collect(),
        ))
    }

    /// The price of an hour of `size` that starts at `start`.
    pub fn rate(&self, size: Size, start: DateTime<Utc>, tariffs: &(impl PriceList + ?Sized)) -> Money {
        self.rows
            .iter()
            .find(|r| r.size == size && r.valid_from <= start)
            .map(|r| r.price.clone())
            .unwrap_or_else(|| tariffs.configured(size))
    }

    /// What a stay from `stored_at` to `ended_at` costs: every started hour at
    /// the price valid when it started, exactly as [`close`](super::close) charges it.
    /// `None` when the prices mix currencies or the sum overflows.
    pub fn cost(
        &self,
        size: Size,
        stored_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        tariffs: &(impl PriceList + ?Sized),
    ) -> Option<Money> {
        let hours = started_hours(stored_at, ended_at);
        let first = self.rate(size, stored_at, tariffs);
        // With no row for this size the price cannot change mid-stay: multiply.
        if !self.rows.iter().any(|r| r.size == size) {
            return first.checked_times(hours);
        }
        (1..hours).try_fold(first, |sum, n| sum.checked_add(&self.rate(size, hour_start(stored_at, n), tariffs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::tests::inr;
    use clap::Parser;

    fn t(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + chrono::Duration::hours(hours)
    }

    fn minutes(m: i64) -> chrono::Duration {
        chrono::Duration::minutes(m)
    }

    #[test]
    fn size_tariffs_parse_and_bad_ones_are_refused() {
        let set: SizeTariffs = "S=4000, M=5000,L=6000,XL=8000".parse().unwrap();
        assert_eq!(set.get(Size::S), Some(4000));
        assert_eq!(set.get(Size::Xl), Some(8000));
        assert_eq!("".parse::<SizeTariffs>().unwrap(), SizeTariffs::default());
        assert_eq!("M=0".parse::<SizeTariffs>().unwrap().get(Size::M), Some(0));
        for bad in ["S", "XXL=1", "S=-1", "S=4.5", "S=1,S=2", "s=1"] {
            assert!(bad.parse::<SizeTariffs>().is_err(), "{bad}");
        }
    }

    #[test]
    fn configuration_gives_per_size_prices_and_the_default_for_the_rest() {
        let config =
            Config::try_parse_from(["lockers", "--tariffs", "S=4000,XL=8000", "--default-tariff-paise", "4500"])
                .unwrap()
                .validated()
                .unwrap();
        let tariffs = Tariffs::from_config(&config);
        assert_eq!(tariffs.configured(Size::S), Money::new(4000, inr()));
        assert_eq!(tariffs.configured(Size::M), Money::new(4500, inr()));
        assert_eq!(tariffs.configured(Size::Xl), Money::new(8000, inr()));
        let defaults = Tariffs::from_config(&Config::try_parse_from(["lockers"]).unwrap().validated().unwrap());
        assert_eq!(defaults.configured(Size::L), Money::new(5000, inr()));
        assert!(Config::try_parse_from(["lockers", "--tariffs", "Q=1"]).is_err());
    }

    #[test]
    fn a_default_tariff_is_one_price_for_every_size_and_tariffs_give_one_per_size() {
        let one = DefaultTariff { minor_per_hour: 4200, currency: inr() };
        assert_eq!(one.configured(Size::S), Money::new(4200, "INR"));
        assert_eq!(one.configured(Size::Xl), one.default_price());
        let tariffs = Tariffs::new(inr(), 5000, "XL=8000".parse().unwrap());
        assert_eq!(tariffs.for_size(Size::Xl), DefaultTariff { minor_per_hour: 8000, currency: inr() });
        assert_eq!(tariffs.for_size(Size::S), DefaultTariff { minor_per_hour: 5000, currency: inr() });
        assert_eq!(tariffs.currency(), "INR");
    }

    #[test]
    fn the_issue_stays_cost_what_the_issue_says() {
        let tariffs = Tariffs::new(inr(), 5000, SizeTariffs::default());
        let none = Schedule::default();
        let cost = |d: chrono::Duration| none.cost(Size::M, t(0), t(0) + d, &tariffs).unwrap().minor;
        assert_eq!(cost(minutes(1)), 5000);
        assert_eq!(cost(minutes(60)), 5000);
        assert_eq!(cost(minutes(61)), 10_000);
        assert_eq!(cost(minutes(3 * 24 * 60)), 360_000);
    }

    #[test]
    fn a_table_row_wins_from_its_valid_from_and_only_for_its_size() {
        let tariffs = Tariffs::new(inr(), 5000, "S=4000".parse().unwrap());
        let row = |size, from, minor| TariffRow { size, valid_from: t(from), price: Money::new(minor, inr()) };
        // M costs 6000 from hour 2, 7000 from hour 3; S has no row.
        let schedule = Schedule::new(vec![row(Size::M, 2, 6000), row(Size::M, 3, 7000), row(Size::L, -10, 1)]);
        assert_eq!(schedule.rate(Size::M, t(0), &tariffs).minor, 5000, "before any row: configuration");
        assert_eq!(schedule.rate(Size::M, t(2), &tariffs).minor, 6000, "valid_from is inclusive");
        assert_eq!(schedule.rate(Size::M, t(5), &tariffs).minor, 7000, "the latest row wins");
        assert_eq!(schedule.rate(Size::S, t(5), &tariffs).minor, 4000);
        assert_eq!(schedule.rate(Size::L, t(0), &tariffs).minor, 1);
        // Hours 0, 1 at 5000, hour 2 at 6000, hours 3, 4 at 7000.
        let five_hours = schedule.cost(Size::M, t(0), t(4) + minutes(1), &tariffs).unwrap();
        assert_eq!(five_hours, Money::new(5000 + 5000 + 6000 + 7000 + 7000, inr()));
        assert_eq!(schedule.cost(Size::S, t(0), t(3), &tariffs).unwrap().minor, 12_000);
    }

    #[test]
    fn mixed_currencies_and_overflow_give_no_amount() {
        let tariffs = Tariffs::new(inr(), 5000, SizeTariffs::default());
        let usd = "USD";
        let schedule = Schedule::new(vec![TariffRow { size: Size::M, valid_from: t(1), price: Money::new(1, usd) }]);
        assert_eq!(schedule.cost(Size::M, t(0), t(2), &tariffs), None);
        let dear = Tariffs::new(inr(), i64::MAX / 2, SizeTariffs::default());
        assert_eq!(Schedule::default().cost(Size::M, t(0), t(3), &dear), None);
    }
}
