//! What items have cost up to a moment: for the sender's item views, which
//! show an open item's running amount and a closed item's settled one.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::tariffs::{PriceList, Schedule, parse_size};
use super::{Money, started_hours};
use crate::db::{DbError, During};
use crate::places::lockers::Size;

/// An item's amount so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accrued {
    pub item_id: Uuid,
    pub amount: Money,
    /// Started hours charged (or to be charged when billing closes now).
    pub hours: i64,
    /// True once billing closed: `amount` is the transaction's, final.
    pub settled: bool,
}

/// What billing knows of one item.
#[derive(Debug, Clone)]
pub(crate) struct Stay {
    pub item_id: Uuid,
    /// `None` for unknown size codes (priced at the default).
    pub size: Option<Size>,
    pub stored_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The transaction, once written: (amount, hours).
    pub settled: Option<(Money, i32)>,
}

/// The amount of each item in `item_ids` as of `at`: the settled bill when
/// billing closed; otherwise every hour started by `at` (or by the item's
/// close, if earlier) at the price valid when it started, as closing now
/// would charge; zero for an item never stored. One entry per item found,
/// in no particular order. Two queries whatever the number of items.
pub async fn so_far(
    conn: &mut PgConnection,
    tariffs: &(impl PriceList + ?Sized),
    item_ids: &[Uuid],
    at: DateTime<Utc>,
) -> Result<Vec<Accrued>, DbError> {
    if item_ids.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (Uuid, String, Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<i64>, Option<String>, Option<i32>);
    // One item (an item's page, every poll of it) by `=`, whose generic plan
    // PostgreSQL keeps; `= ANY` was planned again on every call.
    macro_rules! stays {
        ($which:literal) => {
            concat!(
                "SELECT i.id, i.size, i.stored_at, i.closed_at, t.amount_paise, t.currency::text, t.hours
                 FROM items i LEFT JOIN transactions t ON t.item_id = i.id WHERE ",
                $which
            )
        };
    }
    let rows: Vec<Row> = match item_ids {
        [one] => sqlx::query_as(stays!("i.id = $1")).bind(one),
        many => sqlx::query_as(stays!("i.id = ANY($1)")).bind(many),
    }
    .fetch_all(&mut *conn)
    .await
    .during("read items to price")?;
    let schedule = Schedule::load(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(item_id, size, stored_at, closed_at, minor, currency, hours)| {
            let settled = match (minor, currency, hours) {
                (Some(minor), Some(currency), Some(hours)) => Some((Money::new(minor, currency), hours)),
                _ => None,
            };
            accrued(&Stay { item_id, size: parse_size(&size), stored_at, closed_at, settled }, &schedule, tariffs, at)
        })
        .collect())
}

/// [`so_far`] for one item, without the database.
pub(crate) fn accrued(
    stay: &Stay,
    schedule: &Schedule,
    tariffs: &(impl PriceList + ?Sized),
    at: DateTime<Utc>,
) -> Accrued {
    let item_id = stay.item_id;
    if let Some((amount, hours)) = &stay.settled {
        return Accrued { item_id, amount: amount.clone(), hours: i64::from(*hours), settled: true };
    }
    let Some(stored_at) = stay.stored_at else {
        return Accrued { item_id, amount: Money::zero(tariffs.default_price().currency), hours: 0, settled: false };
    };
    let end = stay.closed_at.map_or(at, |closed| closed.min(at));
    let hours = started_hours(stored_at, end);
    let amount = match stay.size {
        Some(size) => schedule.cost(size, stored_at, end, tariffs),
        None => tariffs.default_price().checked_times(hours),
    };
    let amount = amount.unwrap_or_else(|| {
        // Only a tariff table mixing currencies (or an absurd price) gets here:
        // show the configured price rather than fail the whole item view.
        tracing::warn!(%item_id, "tariffs mix currencies or overflow; showing the configured price");
        let price = stay.size.map_or_else(|| tariffs.default_price(), |s| tariffs.configured(s));
        Money::new(price.minor.saturating_mul(hours), price.currency)
    });
    Accrued { item_id, amount, hours, settled: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::tariffs::{TariffRow, Tariffs};
    use crate::billing::tests::inr;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn stay(stored: Option<i64>, closed: Option<i64>) -> Stay {
        Stay {
            item_id: Uuid::nil(),
            size: Some(Size::M),
            stored_at: stored.map(t),
            closed_at: closed.map(t),
            settled: None,
        }
    }

    fn tariffs() -> Tariffs {
        Tariffs::new(inr(), 5000, "L=6000".parse().unwrap())
    }

    #[test]
    fn an_open_item_costs_its_started_hours_so_far() {
        let none = Schedule::default();
        let at = |m| accrued(&stay(Some(0), None), &none, &tariffs(), t(m));
        assert_eq!((at(1).amount.minor, at(1).hours), (5000, 1));
        assert_eq!((at(60).amount.minor, at(60).hours), (5000, 1));
        assert_eq!((at(61).amount.minor, at(61).hours), (10_000, 2));
        assert_eq!(at(3 * 24 * 60).amount.minor, 360_000);
        assert!(!at(1).settled);
        let large = Stay { size: Some(Size::L), ..stay(Some(0), None) };
        assert_eq!(accrued(&large, &none, &tariffs(), t(61)).amount.minor, 12_000, "the size's own price");
    }

    #[test]
    fn a_settled_item_shows_its_bill_and_an_unstored_one_nothing() {
        let none = Schedule::default();
        let settled = Stay { settled: Some((Money::new(15_000, inr()), 3)), ..stay(Some(0), Some(150)) };
        let shown = accrued(&settled, &none, &tariffs(), t(10_000));
        assert_eq!((shown.amount.minor, shown.hours, shown.settled), (15_000, 3, true));
        let reserved = accrued(&stay(None, None), &none, &tariffs(), t(10_000));
        assert_eq!((reserved.amount, reserved.hours), (Money::zero(inr()), 0));
    }

    #[test]
    fn an_item_closed_without_a_bill_stops_at_its_close() {
        let shown = accrued(&stay(Some(0), Some(90)), &Schedule::default(), &tariffs(), t(10_000));
        assert_eq!((shown.amount.minor, shown.hours), (10_000, 2));
    }

    #[test]
    fn table_prices_apply_from_their_hour_and_a_currency_mix_falls_back() {
        let row = |minutes, minor, currency: &str| TariffRow {
            size: Size::M,
            valid_from: t(minutes),
            price: Money::new(minor, currency),
        };
        let schedule = Schedule::new(vec![row(60, 7000, "INR")]);
        let shown = accrued(&stay(Some(0), None), &schedule, &tariffs(), t(121));
        assert_eq!(shown.amount.minor, 5000 + 7000 + 7000);
        let mixed = Schedule::new(vec![row(60, 7000, "USD")]);
        let shown = accrued(&stay(Some(0), None), &mixed, &tariffs(), t(121));
        assert_eq!(shown.amount, Money::new(15_000, inr()));
    }
}
