//! Places: states, cities within states, locker points within cities, and
//! their lockers. Names are unique within their parent, case-insensitively
//! (unique indexes on `lower(name)`); a place with children cannot be deleted
//! (foreign keys `ON DELETE RESTRICT`).
//!
//! This module holds the types and pure rules; `store` the SQL (its reads are
//! re-exported: a read is not a use case); `use_cases` the audited writes.

pub mod credentials;
pub mod directory;
pub mod enrolment;
pub mod lockers;
pub mod overview;
mod store;
mod use_cases;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{Config, DEV_CONTROLLER_TOKEN_SECRET, Secret};
use crate::db::DbError;

pub use store::{city, controller_token_generation, list_cities, list_states, point, state};
pub use use_cases::*;

/// Which level of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceKind {
    State,
    City,
    Point,
}

impl PlaceKind {
    /// How people call it, e.g. in "locker point not found".
    pub fn noun(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::City => "city",
            Self::Point => "locker point",
        }
    }
}

/// The ways a write to a place is refused.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("{} not found", .0.noun())]
    NotFound(PlaceKind),
    #[error("the name is already used within the same parent")]
    NameTaken,
    #[error("the parent does not exist")]
    ParentMissing,
    /// The place (of this kind) still has children.
    #[error("it still has children")]
    HasChildren(PlaceKind),
    #[error(transparent)]
    Db(DbError),
}

impl PlaceError {
    /// The one mapping of this aggregate's constraints, by name. A parent's
    /// foreign key refuses both ends: a write naming a missing parent, or
    /// (`deleting`) the delete of a parent that still has children. Unknown
    /// constraints stay database errors (a 500), so a future index cannot
    /// answer `name_taken` by accident.
    pub(crate) fn from_constraint(e: DbError, deleting: bool) -> Self {
        let parent = match e.constraint() {
            Some("states_name_key" | "cities_name_key" | "locker_points_name_key") => return Self::NameTaken,
            Some("cities_state_id_fkey") => PlaceKind::State,
            Some("locker_points_city_id_fkey") => PlaceKind::City,
            Some("lockers_point_id_fkey") if deleting => PlaceKind::Point,
            _ => return Self::Db(e),
        };
        if deleting { Self::HasChildren(parent) } else { Self::ParentMissing }
    }
}

impl From<DbError> for PlaceError {
    fn from(e: DbError) -> Self {
        Self::from_constraint(e, false)
    }
}

/// Trimmed text of 1 to `max` characters without control characters.
fn bounded_text(raw: &str, max: usize) -> Option<String> {
    let s = raw.trim();
    let len = s.chars().count();
    ((1..=max).contains(&len) && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

/// A place name: 1 to 100 characters (points: 200) after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceName(String);

impl PlaceName {
    /// The longest name of a state or city.
    pub const MAX: usize = 100;
    /// The longest name of a locker point.
    pub const POINT_MAX: usize = 200;

    pub fn parse(raw: &str, max: usize) -> Option<Self> {
        bounded_text(raw, max).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A point's street address: 1 to 500 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(String);

impl Address {
    pub const MAX: usize = 500;

    pub fn parse(raw: &str) -> Option<Self> {
        bounded_text(raw, Self::MAX).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a point's controller listens: an http(s) URL of at most 500 bytes,
/// without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerUrl(String);

impl ControllerUrl {
    pub fn parse(raw: &str) -> Option<Self> {
        let url = raw.trim();
        let ok = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() <= 500
            && !url.contains(char::is_control)
            && url.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains(char::is_whitespace));
        ok.then(|| Self(url.trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// [`parse`](Self::parse), then, unless `allow_internal`, refuses a URL whose
    /// host is a loopback, link-local, private or unspecified address (or
    /// `localhost`): a point's URL must not reach into the backend's network.
    /// Names resolving to such addresses are refused by the door driver at send
    /// time, after resolution.
    pub fn parse_checked(raw: &str, allow_internal: bool) -> Result<Self, ControllerUrlError> {
        let url = Self::parse(raw).ok_or(ControllerUrlError::Invalid)?;
        match url.host() {
            Host::Invalid => Err(ControllerUrlError::Invalid),
            Host::Ip(ip) if !allow_internal && is_internal_ip(ip) => Err(ControllerUrlError::Internal),
            Host::Name(name) if !allow_internal && is_local_name(name) => Err(ControllerUrlError::Internal),
            _ => Ok(url),
        }
    }

    /// The host part, read as URL parsers read it (a numeric last label makes an IPv4 address).
    fn host(&self) -> Host<'_> {
        let rest = self.0.split_once("://").map_or("", |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        // Credentials in a controller URL are refused: they hide the real host from a reader.
        if authority.contains('@') || authority.is_empty() {
            return Host::Invalid;
        }
        if let Some(v6) = authority.strip_prefix('[') {
            return match v6.split_once(']').map(|(ip, _)| ip.parse::<std::net::Ipv6Addr>()) {
                Some(Ok(ip)) => Host::Ip(std::net::IpAddr::V6(ip)),
                _ => Host::Invalid,
            };
        }
        let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host).trim_end_matches('.');
        let last = host.rsplit('.').next().unwrap_or("");
        let numeric = !last.is_empty()
            && (last.bytes().all(|b| b.is_ascii_digit()) || last.to_ascii_lowercase().starts_with("0x"));
        if numeric {
            // Only the plain dotted form: `2130706433` or `0x7f.1` would be loopback to a URL parser.
            return host.parse::<std::net::Ipv4Addr>().map_or(Host::Invalid, |ip| Host::Ip(ip.into()));
        }
        if host.is_empty() { Host::Invalid } else { Host::Name(host) }
    }
}

/// Why a controller URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControllerUrlError {
    #[error("controller_url must be an http(s) URL")]
    Invalid,
    #[error("controller_url names a loopback, link-local, private or unspecified address")]
    Internal,
}

enum Host<'a> {
    Ip(std::net::IpAddr),
    Name(&'a str),
    Invalid,
}

fn is_local_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Addresses a point's URL must not reach in production: loopback, private,
/// link-local, unspecified, shared (CGNAT), broadcast, unique-local IPv6, and
/// IPv4 written inside IPv6.
pub fn is_internal_ip(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
            // NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48) reach IPv4 hosts.
            if let Some(v4) = v6.to_ipv4() {
                return v6.is_loopback() || v6.is_unspecified() || is_internal_ip(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let embedded =
                |hi: u16, lo: u16| std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
                return is_internal_ip(IpAddr::V4(embedded(seg[6], seg[7])));
            }
            if seg[0] == 0x2002 {
                return is_internal_ip(IpAddr::V4(embedded(seg[1], seg[2])));
            }
            let first = seg[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Whether this deployment lets controller URLs name internal addresses:
/// always in development, in production only with `CONTROLLER_ALLOW_PRIVATE_URLS`.
pub fn internal_controllers_allowed(config: &Config) -> bool {
    !config.is_production() || config.controller_allow_private_urls
}

/// `Serialize` on the domain types is the form the audit log records, not an
/// API body (the API has its own views).
#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct City {
    pub id: Uuid,
    pub state_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockerPoint {
    pub id: Uuid,
    pub city_id: Uuid,
    pub name: String,
    pub address: String,
    /// An internal address: the API shows it to admins only.
    pub controller_url: Option<String>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A point is online when its controller sent a heartbeat in the last 60 seconds.
pub const ONLINE_WINDOW_SECS: i64 = 60;

/// The one "online" rule: a heartbeat within [`ONLINE_WINDOW_SECS`], or always
/// under the simulated door driver (there is no controller to hear from).
pub fn is_online(last_heartbeat_at: Option<DateTime<Utc>>, now: DateTime<Utc>, doors_simulated: bool) -> bool {
    doors_simulated || last_heartbeat_at.is_some_and(|at| (now - at).num_seconds() < ONLINE_WINDOW_SECS)
}

impl LockerPoint {
    pub fn is_online(&self, now: DateTime<Utc>, doors_simulated: bool) -> bool {
        is_online(self.last_heartbeat_at, now, doors_simulated)
    }
}

/// A controller's bearer token (both directions of protocol v1): derived, never
/// stored. The database keeps its SHA-256 (inbound checks look the point up by
/// it) and the generation it was derived with; without the server's
/// [`ControllerKey`] a dump reveals neither the token nor a way to make one.
pub struct ControllerToken(String);

impl ControllerToken {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database keeps of a token, and what a presented one is looked up by.
    pub fn digest(raw: &str) -> Vec<u8> {
        Sha256::digest(raw.as_bytes()).to_vec()
    }
}

/// The server secret controller tokens are derived from (`CONTROLLER_TOKEN_SECRET`).
#[derive(Clone)]
pub struct ControllerKey(Secret);

impl ControllerKey {
    pub fn new(secret: Secret) -> Self {
        Self(secret)
    }

    /// The configured key; validation always fills the setting (a fixed value in development).
    pub fn from_config(config: &Config) -> Self {
        Self(config.controller_token_secret.clone().unwrap_or_else(|| Secret::new(DEV_CONTROLLER_TOKEN_SECRET)))
    }

    /// The token of generation `generation` of point `point_id`:
    /// base64url(HMAC-SHA256(secret, point id bytes || generation as 4 big-endian bytes)).
    /// A new generation is a new, unrelated token; the old one is never derived again.
    pub fn token(&self, point_id: Uuid, generation: i32) -> ControllerToken {
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.expose().as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(point_id.as_bytes());
        mac.update(&generation.to_be_bytes());
        ControllerToken(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for ControllerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControllerKey(***)")
    }
}

/// Changes to a city; `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct CityChanges {
    pub state_id: Option<Uuid>,
    pub name: Option<PlaceName>,
}

#[derive(Debug, Clone)]
pub struct NewPoint {
    pub city_id: Uuid,
    pub name: PlaceName,
    pub address: Address,
    pub controller_url: Option<ControllerUrl>,
}

/// Changes to a point; `None` leaves a field.
#[derive(Debug, Clone, Default)]
pub struct PointChanges {
    pub city_id: Option<Uuid>,
    pub name: Option<PlaceName>,
    pub address: Option<Address>,
    /// `Some(None)` clears the URL.
    pub controller_url: Option<Option<ControllerUrl>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_names_are_trimmed_and_bounded() {
        assert_eq!(PlaceName::parse("  Karnataka ", 100).map(|n| n.0).as_deref(), Some("Karnataka"));
        assert!(PlaceName::parse("", 100).is_none());
        assert!(PlaceName::parse(&"x".repeat(101), 100).is_none());
        assert!(PlaceName::parse(&"x".repeat(200), PlaceName::POINT_MAX).is_some());
        assert!(PlaceName::parse("a\nb", 100).is_none());
        assert!(Address::parse(&"x".repeat(500)).is_some());
        assert!(Address::parse(&"x".repeat(501)).is_none());
        assert!(Address::parse("   ").is_none());
    }

    #[test]
    fn controller_urls_are_http_without_a_trailing_slash() {
        assert_eq!(ControllerUrl::parse(" http://10.0.0.5:8080/ ").unwrap().as_str(), "http://10.0.0.5:8080");
        assert_eq!(ControllerUrl::parse("https://c.example").unwrap().as_str(), "https://c.example");
        for bad in ["ftp://x", "http://", "http://a b", "http://a\u{7}", "10.0.0.5", ""] {
            assert!(ControllerUrl::parse(bad).is_none(), "{bad:?}");
        }
        assert!(ControllerUrl::parse(&format!("http://{}", "a".repeat(493))).is_some(), "500 bytes");
        assert!(ControllerUrl::parse(&format!("http://{}", "a".repeat(494))).is_none());
    }

    #[test]
    fn ipv4_written_inside_ipv6_is_judged_as_ipv4() {
        for internal in ["::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "::1", "::"] {
            assert!(is_internal_ip(internal.parse().unwrap()), "{internal}");
        }
        for public in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:db8::1"] {
            assert!(!is_internal_ip(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn internal_controller_urls_are_refused_unless_allowed() {
        for internal in [
            "http://127.0.0.1:8080",
            "http://10.1.2.3",
            "https://192.168.0.10/x",
            "http://172.16.0.1",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0",
            "http://100.64.0.1",
            "http://[::1]:80",
            "http://[fe80::1]",
            "http://[fd00::1]",
            "http://[::ffff:127.0.0.1]",
            "http://localhost:9000",
            "http://api.LOCALHOST",
        ] {
            assert_eq!(ControllerUrl::parse_checked(internal, false), Err(ControllerUrlError::Internal), "{internal}");
            assert!(ControllerUrl::parse_checked(internal, true).is_ok(), "{internal} allowed by configuration");
        }
        for public in ["https://controller.example.com:8443/base", "http://8.8.8.8", "http://[2001:4860::8888]"] {
            assert!(ControllerUrl::parse_checked(public, false).is_ok(), "{public}");
        }
        // Numeric hosts a URL parser reads as 127.0.0.1, and hidden hosts, are not URLs we take.
        for sneaky in ["http://2130706433", "http://0x7f.1", "http://127.1", "http://user@127.0.0.1", "http://[::1"] {
            assert_eq!(ControllerUrl::parse_checked(sneaky, true), Err(ControllerUrlError::Invalid), "{sneaky}");
        }
    }

    #[test]
    fn controller_tokens_depend_on_the_secret_the_point_and_the_generation() {
        let key = ControllerKey::new(Secret::new("k".repeat(32)));
        let other = ControllerKey::new(Secret::new("j".repeat(32)));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(key.token(a, 0).expose(), key.token(a, 0).expose(), "stable");
        assert_ne!(key.token(a, 0).expose(), key.token(a, 1).expose());
        assert_ne!(key.token(a, 0).expose(), key.token(b, 0).expose());
        assert_ne!(key.token(a, 0).expose(), other.token(a, 0).expose());
        assert_eq!(key.token(a, 0).expose().len(), 43, "256 bits, base64url without padding");
        assert!(!format!("{key:?}").contains("kkk"));
    }

    #[test]
    fn a_point_is_online_within_sixty_seconds_of_a_heartbeat() {
        let now = Utc::now();
        let mut point = LockerPoint {
            id: Uuid::now_v7(),
            city_id: Uuid::now_v7(),
            name: "P".into(),
            address: "A".into(),
            controller_url: None,
            last_heartbeat_at: None,
            created_at: now,
        };
        assert!(!point.is_online(now, false));
        point.last_heartbeat_at = Some(now - chrono::Duration::seconds(59));
        assert!(point.is_online(now, false));
        point.last_heartbeat_at = Some(now - chrono::Duration::seconds(61));
        assert!(!point.is_online(now, false));
    }

    #[test]
    fn every_point_is_online_under_simulated_doors() {
        let now = Utc::now();
        assert!(is_online(None, now, true));
        assert!(is_online(Some(now - chrono::Duration::hours(1)), now, true));
        assert!(!is_online(Some(now - chrono::Duration::hours(1)), now, false));
    }
}
