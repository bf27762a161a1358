//! `?page=&per_page=` and the list envelope `{items, page, per_page, total}`.

use lockers_core::places::directory::Terms;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

pub const MAX_PER_PAGE: u32 = 100;
const DEFAULT_PER_PAGE: u32 = 50;
/// The deepest row any list serves (`page * per_page`). An OFFSET makes the
/// database produce and discard every row before the page, so without a bound
/// one request for page 1,000,000 costs as much as reading the whole table;
/// past this depth clients narrow their filters instead.
pub const MAX_DEPTH: u64 = 10_000;

#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 100 (default 50); `page * per_page` at most 10000.
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl PageQuery {
    /// For query structs with more fields (serde's `flatten` breaks number parsing in query strings).
    pub fn new(page: Option<u32>, per_page: Option<u32>) -> Self {
        Self { page, per_page }
    }

    pub fn parse(self) -> Result<Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(ApiError::bad_request("invalid_query", "page must be at least 1"));
        }
        if per_page == 0 || per_page > MAX_PER_PAGE {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("per_page must be between 1 and {MAX_PER_PAGE}"),
            ));
        }
        if u64::from(page) * u64::from(per_page) > MAX_DEPTH {
            return Err(ApiError::unprocessable(
                "page_too_deep",
                format!("lists go {MAX_DEPTH} rows deep at most (page * per_page); narrow the filters instead"),
            ));
        }
        Ok(Page { page, per_page })
    }
}

impl Page {
    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// The page's size and start for lists served from memory.
    pub fn limit_rows(&self) -> usize {
        self.per_page as usize
    }

    pub fn offset_rows(&self) -> usize {
        (self.page as usize - 1) * self.per_page as usize
    }
}

/// The longest search text (`q`, `location`) taken, in characters; longer
/// answers `400 invalid_query` rather than being cut somewhere surprising.
pub const MAX_QUERY_CHARS: usize = 200;

/// Search text parsed into words; `None` for blank text (no filter).
pub fn search_terms(text: Option<&str>) -> Result<Option<Terms>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("search text must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    Ok(Terms::parse(text))
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub per_page: u32,
    pub total: i64,
}

impl<T> List<T> {
    pub fn new(items: Vec<T>, page: Page, total: i64) -> Self {
        Self { items, page: page.page, per_page: page.per_page, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded_and_offsets_follow() {
        let page = PageQuery { page: Some(3), per_page: Some(20) }.parse().unwrap();
        assert_eq!((page.limit(), page.offset()), (20, 40));
        assert_eq!(PageQuery { page: None, per_page: None }.parse().unwrap(), Page { page: 1, per_page: 50 });
        assert!(PageQuery { page: Some(0), per_page: None }.parse().is_err());
        assert!(PageQuery { page: None, per_page: Some(101) }.parse().is_err());
    }

    #[test]
    fn pages_deeper_than_ten_thousand_rows_are_refused_with_page_too_deep() {
        assert!(PageQuery { page: Some(100), per_page: Some(100) }.parse().is_ok());
        assert!(PageQuery { page: Some(200), per_page: None }.parse().is_ok());
        for (page, per_page) in [(101, 100), (201, 50), (10_001, 1), (u32::MAX, 100)] {
            match (PageQuery { page: Some(page), per_page: Some(per_page) }).parse() {
                Err(ApiError::Unprocessable { code, .. }) => assert_eq!(code, "page_too_deep"),
                other => panic!("page {page} x {per_page}: {other:?}"),
            }
        }
    }
}
