//! The console's lists: pages of [`PER_PAGE`] rows with links that keep the
//! filters, and the filters' parsing (a blank field does not narrow; a bad
//! one refuses the filter with a message, never a 500).

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::Value;
use minijinja::context;
use uuid::Uuid;

use super::notice::Notice;
use crate::pagination::{Page, PageQuery};
use crate::web::error::encode;

pub const PER_PAGE: u32 = 50;

/// Query parameters as the forms send them: every value text, maybe blank.
pub type Params = std::collections::HashMap<String, String>;

/// Query parameters; a malformed query string reads as none.
pub fn params(query: Result<axum::extract::Query<Params>, axum::extract::rejection::QueryRejection>) -> Params {
    query.map(|q| q.0).unwrap_or_default()
}

/// The trimmed value of `name`, none when absent or blank.
pub fn field<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Why a filter was not applied.
fn bad_filter() -> Notice {
    Notice::refused(StatusCode::BAD_REQUEST, "admin.err_bad_filter")
}

/// An id filter.
pub fn id(params: &Params, name: &str) -> Result<Option<Uuid>, Notice> {
    field(params, name).map(|v| Uuid::parse_str(v).map_err(|_| bad_filter())).transpose()
}

/// A day filter (`YYYY-MM-DD`, as `<input type="date">` sends it): its
/// first instant (UTC), plus `days_after` days (1 makes an exclusive end of
/// an inclusive "to" day).
pub fn day(params: &Params, name: &str, days_after: i64) -> Result<Option<DateTime<Utc>>, Notice> {
    let Some(raw) = field(params, name) else { return Ok(None) };
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| bad_filter())?;
    // PostgreSQL's timestamps end at 4713 BC and 294276 AD; no record predates 1970.
    if !(1970..=9999).contains(&chrono::Datelike::year(&date)) {
        return Err(bad_filter());
    }
    let start = date.and_hms_opt(0, 0, 0).ok_or_else(bad_filter)?.and_utc();
    start.checked_add_signed(chrono::Duration::days(days_after)).map(Some).ok_or_else(bad_filter)
}

/// Refuses a range whose start is after its end.
pub fn range(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<(), Notice> {
    match (from, to) {
        (Some(from), Some(to)) if from >= to => Err(bad_filter()),
        _ => Ok(()),
    }
}

/// The page asked for (`?page=`, from 1), bounded like the JSON API's lists.
pub fn page(params: &Params) -> Result<Page, Notice> {
    let number = match field(params, "page") {
        None => 1,
        Some(raw) => raw.parse::<u32>().map_err(|_| bad_filter())?,
    };
    PageQuery::new(Some(number), Some(PER_PAGE))
        .parse()
        .map_err(|e| Notice::from_error(e).unwrap_or_else(|_| bad_filter()))
}

/// The first page, for a list drawn again after a refused filter.
pub fn first_page() -> Page {
    Page { page: 1, per_page: PER_PAGE }
}

/// The template's `pager`: where this page is and links to its neighbours,
/// keeping the `kept` filters.
pub fn pager(base: &str, params: &Params, kept: &[&str], page: Page, total: i64) -> Value {
    let pages = ((total.max(0) as u64).div_ceil(u64::from(page.per_page))).max(1);
    let link = |n: u64| {
        let mut query: Vec<String> =
            kept.iter().filter_map(|k| field(params, k).map(|v| format!("{k}={}", encode(v)))).collect();
        query.push(format!("page={n}"));
        format!("{base}?{}", query.join("&"))
    };
    let current = u64::from(page.page);
    context! {
        page => current,
        pages => pages,
        total => total,
        prev => (current > 1).then(|| link(current - 1)),
        next => (current < pages).then(|| link(current + 1)),
    }
}

/// A time as the console shows it: UTC to the minute.
pub fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional time, blank when none.
pub fn when_opt(at: Option<DateTime<Utc>>) -> String {
    at.map(when).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params_of(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn days_are_utc_midnights_and_bad_ones_are_refused() {
        let p = params_of(&[("from", "2026-03-01"), ("to", "2026-03-01"), ("bad", "March"), ("blank", " ")]);
        let from = day(&p, "from", 0).unwrap().unwrap();
        let to = day(&p, "to", 1).unwrap().unwrap();
        assert_eq!((to - from).num_hours(), 24);
        assert!(range(Some(from), Some(to)).is_ok());
        assert!(range(Some(to), Some(from)).is_err());
        assert!(day(&p, "bad", 0).is_err());
        assert_eq!(day(&p, "blank", 0).unwrap(), None);
    }

    #[test]
    fn pager_links_keep_the_filters() {
        let p = params_of(&[("status", "stored"), ("page", "2"), ("other", "x")]);
        let page = page(&p).unwrap();
        let pager = pager("/admin/items", &p, &["status"], page, 120);
        assert_eq!(pager.get_attr("pages").unwrap().as_usize(), Some(3));
        assert_eq!(pager.get_attr("prev").unwrap().as_str(), Some("/admin/items?status=stored&page=1"));
        assert_eq!(pager.get_attr("next").unwrap().as_str(), Some("/admin/items?status=stored&page=3"));
        assert!(page_too_deep_is_refused());
    }

    fn page_too_deep_is_refused() -> bool {
        super::page(&params_of(&[("page", "100000")])).is_err()
    }
}
