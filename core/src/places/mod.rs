//! Places: states, cities within states, locker points within cities, and the
//! SQL that owns them. Names are unique within their parent, case-insensitively
//! (unique indexes on `lower(name)`); a place with children cannot be deleted
//! (foreign keys `ON DELETE RESTRICT`).

pub mod lockers;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// What a write to a place can run into, told apart by constraint.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("the name is already used within the same parent")]
    NameTaken,
    #[error("the parent does not exist")]
    ParentMissing,
    #[error("it still has children")]
    HasChildren,
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for PlaceError {
    fn from(e: sqlx::Error) -> Self {
        let Some(db) = e.as_database_error() else { return Self::Database(e) };
        match db.code().as_deref() {
            Some("23505") => Self::NameTaken,
            // On insert or update a refused foreign key means the parent is missing
            // (deletes map it to `HasChildren` themselves, see `delete_row`).
            Some("23503") => Self::ParentMissing,
            _ => Self::Database(e),
        }
    }
}

/// A place name: 1 to 100 (points: 200) characters after trimming, no control characters.
pub fn parse_name(raw: &str, max: usize) -> Option<String> {
    let s = raw.trim();
    let len = s.chars().count();
    ((1..=max).contains(&len) && !s.chars().any(char::is_control)).then(|| s.to_owned())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct State {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct City {
    pub id: Uuid,
    pub state_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LockerPoint {
    pub id: Uuid,
    pub city_id: Uuid,
    pub name: String,
    pub address: String,
    /// An internal address: shown to admins only (see the API's point views).
    #[serde(skip)]
    pub controller_url: Option<String>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A point is online when its controller sent a heartbeat in the last 60 seconds.
pub const ONLINE_WINDOW_SECS: i64 = 60;

impl LockerPoint {
    pub fn heartbeat_is_recent(&self, now: DateTime<Utc>) -> bool {
        self.last_heartbeat_at.is_some_and(|at| (now - at).num_seconds() < ONLINE_WINDOW_SECS)
    }
}

/// A controller's bearer token: shown once, stored as SHA-256.
pub struct ControllerToken(String);

impl ControllerToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn digest(raw: &str) -> Vec<u8> {
        Sha256::digest(raw.as_bytes()).to_vec()
    }
}

// States ----------------------------------------------------------------------

/// One page of states by name, and how many there are.
pub async fn list_states(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<(Vec<State>, i64), sqlx::Error> {
    let items = sqlx::query_as("SELECT id, name, created_at FROM states ORDER BY lower(name), id LIMIT $1 OFFSET $2")
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM states").fetch_one(conn).await?;
    Ok((items, total))
}

pub async fn state(conn: &mut PgConnection, id: Uuid) -> Result<Option<State>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, created_at FROM states WHERE id = $1").bind(id).fetch_optional(conn).await
}

pub async fn create_state(conn: &mut PgConnection, name: &str) -> Result<State, PlaceError> {
    Ok(sqlx::query_as("INSERT INTO states (id, name) VALUES ($1, $2) RETURNING id, name, created_at")
        .bind(Uuid::now_v7())
        .bind(name)
        .fetch_one(conn)
        .await?)
}

pub async fn rename_state(conn: &mut PgConnection, id: Uuid, name: &str) -> Result<Option<State>, PlaceError> {
    Ok(sqlx::query_as("UPDATE states SET name = $2, updated_at = now() WHERE id = $1 RETURNING id, name, created_at")
        .bind(id)
        .bind(name)
        .fetch_optional(conn)
        .await?)
}

pub async fn delete_state(conn: &mut PgConnection, id: Uuid) -> Result<bool, PlaceError> {
    delete_row(conn, "DELETE FROM states WHERE id = $1", id).await
}

/// Deletes one row; a refusing foreign key means children still point at it.
async fn delete_row(conn: &mut PgConnection, sql: &'static str, id: Uuid) -> Result<bool, PlaceError> {
    match sqlx::query(sql).bind(id).execute(conn).await {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23503") => {
            Err(PlaceError::HasChildren)
        }
        Err(e) => Err(e.into()),
    }
}

// Cities ----------------------------------------------------------------------

/// One page of cities (optionally of one state) by name, and how many match.
pub async fn list_cities(
    conn: &mut PgConnection,
    state_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<City>, i64), sqlx::Error> {
    let items = sqlx::query_as(
        "SELECT id, state_id, name, created_at FROM cities
         WHERE $1::uuid IS NULL OR state_id = $1 ORDER BY lower(name), id LIMIT $2 OFFSET $3",
    )
    .bind(state_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM cities WHERE $1::uuid IS NULL OR state_id = $1")
        .bind(state_id)
        .fetch_one(conn)
        .await?;
    Ok((items, total))
}

pub async fn city(conn: &mut PgConnection, id: Uuid) -> Result<Option<City>, sqlx::Error> {
    sqlx::query_as("SELECT id, state_id, name, created_at FROM cities WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn create_city(conn: &mut PgConnection, state_id: Uuid, name: &str) -> Result<City, PlaceError> {
    Ok(sqlx::query_as(
        "INSERT INTO cities (id, state_id, name) VALUES ($1, $2, $3) RETURNING id, state_id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(state_id)
    .bind(name)
    .fetch_one(conn)
    .await?)
}

pub async fn update_city(
    conn: &mut PgConnection,
    id: Uuid,
    state_id: Option<Uuid>,
    name: Option<&str>,
) -> Result<Option<City>, PlaceError> {
    Ok(sqlx::query_as(
        "UPDATE cities SET state_id = coalesce($2, state_id), name = coalesce($3, name), updated_at = now()
         WHERE id = $1 RETURNING id, state_id, name, created_at",
    )
    .bind(id)
    .bind(state_id)
    .bind(name)
    .fetch_optional(conn)
    .await?)
}

pub async fn delete_city(conn: &mut PgConnection, id: Uuid) -> Result<bool, PlaceError> {
    delete_row(conn, "DELETE FROM cities WHERE id = $1", id).await
}

// Locker points ---------------------------------------------------------------

const POINT_COLUMNS: &str = "id, city_id, name, address, controller_url, last_heartbeat_at, created_at";

/// Search text split into words, each escaped for LIKE; every word must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms {
    pub words: Vec<String>,
    /// The whole query, for ranking.
    pub query: String,
}

impl SearchTerms {
    /// `None` for blank text; at most 8 words of at most 100 characters are used.
    pub fn parse(raw: &str) -> Option<Self> {
        // Control characters (NUL included, which PostgreSQL text refuses) never match a place.
        let raw: String = raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let words: Vec<String> =
            raw.split_whitespace().take(8).map(|w| escape_like(&w.chars().take(100).collect::<String>())).collect();
        (!words.is_empty()).then(|| Self { query: raw.trim().chars().take(300).collect(), words })
    }

    /// `AND p.search_document LIKE ...` per word, with placeholders from `$first`
    /// (each a separate, trigram-indexable condition).
    pub fn conditions(&self, column: &str, first: usize) -> String {
        (0..self.words.len())
            .map(|i| format!(" AND {column} LIKE '%' || lockers_fold(${}) || '%'", first + i))
            .collect()
    }
}

/// One page of points, optionally within a city and matching the search terms,
/// best match first, and how many match. Paged in SQL: a page costs the rows it
/// shows (plus the skipped ones, which the API's depth bound keeps few).
pub async fn list_points(
    conn: &mut PgConnection,
    city_id: Option<Uuid>,
    terms: Option<&SearchTerms>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<LockerPoint>, i64), sqlx::Error> {
    // Rows: $1 city, $2 query text (ranking only), a parameter per word, limit, offset.
    // Count: $1 city, a parameter per word.
    let words = terms.map(|t| t.words.clone()).unwrap_or_default();
    let in_city = "WHERE ($1::uuid IS NULL OR city_id = $1)";
    let row_conditions = terms.map(|t| t.conditions("search_document", 3)).unwrap_or_default();
    let count_conditions = terms.map(|t| t.conditions("search_document", 2)).unwrap_or_default();
    let next = 3 + words.len();
    let rows_sql = format!(
        "SELECT {POINT_COLUMNS} FROM locker_points {in_city} {row_conditions}
         ORDER BY word_similarity(lockers_fold(coalesce($2, '')), search_document) DESC, lower(name), id
         LIMIT ${next} OFFSET ${}",
        next + 1
    );
    let count_sql = format!("SELECT count(*) FROM locker_points {in_city} {count_conditions}");
    let mut rows = sqlx::query_as(sqlx::AssertSqlSafe(rows_sql)).bind(city_id).bind(terms.map(|t| t.query.clone()));
    let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql)).bind(city_id);
    for word in &words {
        rows = rows.bind(word.clone());
        count = count.bind(word.clone());
    }
    let items = rows.bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    let total = count.fetch_one(conn).await?;
    Ok((items, total))
}

pub async fn point(conn: &mut PgConnection, id: Uuid) -> Result<Option<LockerPoint>, sqlx::Error> {
    let sql = format!("SELECT {POINT_COLUMNS} FROM locker_points WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
}

pub struct NewPoint<'a> {
    pub city_id: Uuid,
    pub name: &'a str,
    pub address: &'a str,
    pub controller_url: Option<&'a str>,
}

/// Creates a point; the returned token is the only time it is seen.
pub async fn create_point(
    conn: &mut PgConnection,
    new: NewPoint<'_>,
) -> Result<(LockerPoint, ControllerToken), PlaceError> {
    let token = ControllerToken::generate();
    let sql = format!(
        "INSERT INTO locker_points (id, city_id, name, address, controller_url, controller_token_hash)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {POINT_COLUMNS}"
    );
    let point = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(new.city_id)
        .bind(new.name)
        .bind(new.address)
        .bind(new.controller_url)
        .bind(ControllerToken::digest(token.expose()))
        .fetch_one(conn)
        .await?;
    Ok((point, token))
}

pub struct PointChanges<'a> {
    pub city_id: Option<Uuid>,
    pub name: Option<&'a str>,
    pub address: Option<&'a str>,
    /// `Some(None)` clears the URL.
    pub controller_url: Option<Option<&'a str>>,
}

pub async fn update_point(
    conn: &mut PgConnection,
    id: Uuid,
    changes: PointChanges<'_>,
) -> Result<Option<LockerPoint>, PlaceError> {
    let sql = format!(
        "UPDATE locker_points SET city_id = coalesce($2, city_id), name = coalesce($3, name),
             address = coalesce($4, address),
             controller_url = CASE WHEN $5 THEN $6 ELSE controller_url END, updated_at = now()
         WHERE id = $1 RETURNING {POINT_COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(changes.city_id)
        .bind(changes.name)
        .bind(changes.address)
        .bind(changes.controller_url.is_some())
        .bind(changes.controller_url.flatten())
        .fetch_optional(conn)
        .await?)
}

/// Replaces the controller token; the old one stops working at once.
pub async fn rotate_controller_token(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ControllerToken>, sqlx::Error> {
    let token = ControllerToken::generate();
    let done = sqlx::query("UPDATE locker_points SET controller_token_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(ControllerToken::digest(token.expose()))
        .execute(conn)
        .await?
        .rows_affected();
    Ok((done == 1).then_some(token))
}

pub async fn delete_point(conn: &mut PgConnection, id: Uuid) -> Result<bool, PlaceError> {
    delete_row(conn, "DELETE FROM locker_points WHERE id = $1", id).await
}

/// `%`, `_` and `\` in user text match literally in LIKE patterns.
pub fn escape_like(raw: &str) -> String {
    raw.trim().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_are_words_each_with_its_own_indexable_condition() {
        let terms = SearchTerms::parse("  MG   Road 50% ").unwrap();
        assert_eq!(terms.words, ["MG", "Road", "50\\%"]);
        assert_eq!(terms.query, "MG   Road 50%");
        assert_eq!(
            terms.conditions("d", 4),
            " AND d LIKE '%' || lockers_fold($4) || '%' AND d LIKE '%' || lockers_fold($5) || '%' \
             AND d LIKE '%' || lockers_fold($6) || '%'"
        );
        assert!(SearchTerms::parse("   ").is_none());
        assert!(SearchTerms::parse("\0\n").is_none());
        assert_eq!(SearchTerms::parse("a\0b").unwrap().words, ["a", "b"]);
    }

    #[test]
    fn like_wildcards_in_user_text_are_escaped() {
        assert_eq!(escape_like(" 50%_off\\ "), "50\\%\\_off\\\\");
    }

    #[test]
    fn place_names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Karnataka ", 100).as_deref(), Some("Karnataka"));
        assert!(parse_name("", 100).is_none());
        assert!(parse_name(&"x".repeat(101), 100).is_none());
        assert!(parse_name("a\nb", 100).is_none());
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
        assert!(!point.heartbeat_is_recent(now));
        point.last_heartbeat_at = Some(now - chrono::Duration::seconds(59));
        assert!(point.heartbeat_is_recent(now));
        point.last_heartbeat_at = Some(now - chrono::Duration::seconds(61));
        assert!(!point.heartbeat_is_recent(now));
    }
}
