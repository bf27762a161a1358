//! Values as the pages show them: times, sizes, page numbers and query text.

use chrono::{DateTime, Utc};
use lockers_core::places::lockers::Size;
use minijinja::{Value, context};

/// A moment as `{iso, text}`: machine-readable for `<time datetime>`, and
/// readable text (UTC).
pub fn when(at: DateTime<Utc>) -> Value {
    context! { iso => at.to_rfc3339(), text => at.format("%d %b %Y, %H:%M UTC").to_string() }
}

pub fn maybe_when(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::from(()), when)
}

pub const SIZES: [Size; 4] = [Size::S, Size::M, Size::L, Size::Xl];

/// A size's code (`S`, `M`, `L`, `XL`), as catalogue keys and forms name it.
pub fn size_code(size: Size) -> &'static str {
    match size {
        Size::S => "S",
        Size::M => "M",
        Size::L => "L",
        Size::Xl => "XL",
    }
}

/// A size from a form or query; blank or unknown text is none.
pub fn parse_size(raw: Option<&str>) -> Option<Size> {
    SIZES.into_iter().find(|s| raw.is_some_and(|r| r.trim().eq_ignore_ascii_case(size_code(*s))))
}

/// How many pages `total` rows make, at least one.
pub fn pages(total: i64, per_page: u32) -> i64 {
    ((total + i64::from(per_page) - 1) / i64::from(per_page)).max(1)
}

/// A page number from a query: 1 unless a positive number is given, and
/// never deeper than lists go (`MAX_DEPTH` rows).
pub fn page_number(raw: Option<&str>, per_page: u32) -> u32 {
    let deepest = u32::try_from(crate::pagination::MAX_DEPTH / u64::from(per_page)).unwrap_or(1).max(1);
    raw.and_then(|r| r.trim().parse::<u32>().ok()).filter(|p| *p >= 1).unwrap_or(1).min(deepest)
}

/// The rows before page `page`.
pub fn offset(page: u32, per_page: u32) -> i64 {
    i64::from(page.saturating_sub(1)) * i64::from(per_page)
}

/// Percent-encodes `raw` for a query string.
pub fn query_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_from_their_codes_and_nothing_else() {
        assert_eq!(parse_size(Some("xl")), Some(Size::Xl));
        assert_eq!(parse_size(Some(" M ")), Some(Size::M));
        assert_eq!(parse_size(Some("XXL")), None);
        assert_eq!(parse_size(None), None);
    }

    #[test]
    fn page_numbers_are_clamped_and_counted() {
        assert_eq!(page_number(Some("0"), 20), 1);
        assert_eq!(page_number(Some("abc"), 20), 1);
        assert_eq!(page_number(Some("3"), 20), 3);
        assert_eq!(page_number(Some("999999"), 20), 500);
        assert_eq!(offset(3, 20), 40);
        assert_eq!(pages(0, 20), 1);
        assert_eq!(pages(41, 20), 3);
        assert_eq!(query_value("a b+c@d.e"), "a%20b%2Bc%40d.e");
    }
}
