//! What every kiosk page shows around its screen (the point's name, the
//! language switch, the idle reset), and the messages a screen can give.

use std::time::Duration;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::Value;
use serde::Deserialize;
use uuid::Uuid;

use super::screen::Screen;

/// Seconds without input before a page goes back home; `?idle=N` (5 to 600)
/// changes it for the page it is given on, and for the home it resets to.
const IDLE_SECS: u32 = 60;
const IDLE_RANGE: std::ops::RangeInclusive<u32> = 5..=600;

/// The languages of the switch, in its order.
const LANGUAGES: [&str; 3] = ["en", "hi", "ta"];

/// The query every kiosk page reads. Malformed values are ignored, never an error.
#[derive(Debug, Default, Deserialize)]
pub struct KioskQuery {
    pub idle: Option<String>,
    pub code: Option<String>,
}

impl From<Result<Query<KioskQuery>, QueryRejection>> for KioskQuery {
    fn from(query: Result<Query<KioskQuery>, QueryRejection>) -> Self {
        query.map(|Query(q)| q).unwrap_or_default()
    }
}

impl KioskQuery {
    /// The idle time asked for, when it is a whole number of seconds in range.
    fn idle(&self) -> Option<u32> {
        self.idle.as_deref().and_then(|s| s.trim().parse().ok()).filter(|n| IDLE_RANGE.contains(n))
    }
}

/// The frame's variables.
pub struct Frame {
    base: String,
    point_name: String,
    /// Where the idle reset goes; none on pages of a screen not set up.
    home: Option<String>,
    idle: u32,
    /// The page (path and query) the language links reload; pages answering
    /// a form reload the form's page.
    switch: String,
    offline: bool,
}

impl Frame {
    /// An enrolled screen's page; `switch` is the path below `/kiosk/{id}` the language links reload.
    pub fn of(screen: &Screen, query: &KioskQuery, switch: &str) -> Self {
        let base = base(screen.point.id);
        let idle = query.idle();
        let home = match idle {
            Some(n) => format!("{base}?idle={n}"),
            None => base.clone(),
        };
        let keep = idle.map(|n| format!("?idle={n}")).unwrap_or_default();
        Self {
            switch: format!("{base}{switch}{keep}"),
            base,
            point_name: screen.point.name.clone(),
            home: Some(home),
            idle: idle.unwrap_or(IDLE_SECS),
            offline: !screen.online,
        }
    }

    /// A page of a screen that is not (or not yet) this point's: no idle
    /// reset. `switch` may carry a query.
    pub fn bare(point_id: Uuid, point_name: Option<&str>, switch: &str) -> Self {
        let base = base(point_id);
        Self {
            switch: format!("{base}{switch}"),
            base,
            point_name: point_name.unwrap_or_default().to_owned(),
            home: None,
            idle: IDLE_SECS,
            offline: false,
        }
    }

    /// Renders `template` in this frame with `notice` (whose status the
    /// answer takes; 200 without one) and the page's own variables.
    pub fn render(&self, page: &crate::web::Page, template: &str, notice: Option<Notice>, own: Value) -> Response {
        let status = notice.map_or(StatusCode::OK, Notice::status);
        page.render_status(status, template, self.context(notice, own))
    }

    /// The template context: the frame's variables, `notice` and the page's own.
    pub fn context(&self, notice: Option<Notice>, page: Value) -> Value {
        let (error, minutes) = match notice {
            Some(n) => (Some(n.key()), n.minutes()),
            None => (None, 0),
        };
        let join = if self.switch.contains('?') { '&' } else { '?' };
        let langs: Vec<Value> = LANGUAGES
            .iter()
            .map(|&code| minijinja::context! { code => code, href => format!("{}{join}lang={code}", self.switch) })
            .collect();
        minijinja::context! {
            base => &self.base,
            langs => langs,
            point_name => &self.point_name,
            home => &self.home,
            idle => self.idle,
            offline => self.offline,
            error => error,
            minutes => minutes,
            ..page
        }
    }
}

/// `/kiosk/{id}`.
pub fn base(point_id: Uuid) -> String {
    format!("/kiosk/{point_id}")
}

/// What a screen says when something did not work. None of them tells
/// whether a contact has an item here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    ContactInvalid,
    CountryNotAllowed,
    SmsUnavailable,
    WrongCode,
    /// Too many tries (or requests) for now: wait this long.
    TooMany(Duration),
    ItemUnavailable,
    DropoffNotReserved,
    DropoffDeadline,
    Offline,
    EnrolInvalid,
}

impl Notice {
    /// Its text's key in `kiosk.json`.
    fn key(self) -> &'static str {
        match self {
            Self::ContactInvalid => "contact_invalid",
            Self::CountryNotAllowed => "country_not_allowed",
            Self::SmsUnavailable => "sms_unavailable",
            Self::WrongCode => "wrong_code",
            Self::TooMany(_) => "too_many",
            Self::ItemUnavailable => "item_unavailable",
            Self::DropoffNotReserved => "dropoff_not_reserved",
            Self::DropoffDeadline => "dropoff_deadline",
            Self::Offline => "offline",
            Self::EnrolInvalid => "enrol_invalid",
        }
    }

    /// Whole minutes to wait, at least one.
    fn minutes(self) -> u64 {
        match self {
            Self::TooMany(wait) => wait.as_secs().div_ceil(60).max(1),
            _ => 0,
        }
    }

    /// The status of the page that shows it.
    pub fn status(self) -> StatusCode {
        match self {
            Self::ContactInvalid | Self::CountryNotAllowed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::SmsUnavailable | Self::Offline => StatusCode::SERVICE_UNAVAILABLE,
            Self::WrongCode | Self::EnrolInvalid => StatusCode::UNAUTHORIZED,
            Self::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::ItemUnavailable | Self::DropoffNotReserved | Self::DropoffDeadline => StatusCode::CONFLICT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_is_taken_only_in_range() {
        let q = |s: &str| KioskQuery { idle: Some(s.to_owned()), code: None }.idle();
        assert_eq!(q("5"), Some(5));
        assert_eq!(q("600"), Some(600));
        assert_eq!(q("4"), None);
        assert_eq!(q("601"), None);
        assert_eq!(q("abc"), None);
        assert_eq!(KioskQuery::default().idle(), None);
    }

    #[test]
    fn waits_are_shown_in_whole_minutes() {
        assert_eq!(Notice::TooMany(Duration::from_secs(1)).minutes(), 1);
        assert_eq!(Notice::TooMany(Duration::from_secs(61)).minutes(), 2);
        assert_eq!(Notice::TooMany(Duration::from_secs(3600)).minutes(), 60);
    }
}
