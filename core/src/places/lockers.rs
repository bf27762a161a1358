//! Lockers: the compartments of a locker point, their sizes and statuses, the
//! rules admins change them by, and the search that finds them by place.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::places::SearchTerms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum Size {
    S,
    M,
    L,
    #[serde(rename = "XL")]
    #[sqlx(rename = "XL")]
    Xl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Status {
    Available,
    Reserved,
    Occupied,
    Maintenance,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockerError {
    #[error("admins can only set a locker `available` or `maintenance`")]
    StatusNotSettable,
    #[error("the locker holds a reservation or an item")]
    InUse,
}

/// The admin's status change: only between `available` and `maintenance`, and
/// never while an exchange holds the locker.
pub fn admin_status_change(current: Status, target: Status) -> Result<(), LockerError> {
    if !matches!(target, Status::Available | Status::Maintenance) {
        return Err(LockerError::StatusNotSettable);
    }
    if matches!(current, Status::Reserved | Status::Occupied) && current != target {
        return Err(LockerError::InUse);
    }
    Ok(())
}

/// A locker with the place it stands in.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct LockerRow {
    pub id: Uuid,
    pub point_id: Uuid,
    pub door_no: i32,
    pub size: Size,
    pub status: Status,
    pub inner_width_mm: i32,
    pub inner_height_mm: i32,
    pub inner_depth_mm: i32,
    pub point_name: String,
    pub address: String,
    pub city_id: Uuid,
    pub city_name: String,
    pub state_id: Uuid,
    pub state_name: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT l.id, l.point_id, l.door_no, l.size, l.status,
        z.inner_width_mm, z.inner_height_mm, z.inner_depth_mm,
        p.name AS point_name, p.address, c.id AS city_id, c.name AS city_name, s.id AS state_id,
        s.name AS state_name, p.last_heartbeat_at, l.created_at
    FROM lockers l
    JOIN locker_sizes z ON z.code = l.size
    JOIN locker_points p ON p.id = l.point_id
    JOIN cities c ON c.id = p.city_id
    JOIN states s ON s.id = c.state_id";

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub size: Option<Size>,
    pub point_id: Option<Uuid>,
    pub city_id: Option<Uuid>,
    pub terms: Option<SearchTerms>,
}

/// Lockers matching `filter`, best place match first, one page and the total.
pub async fn search(
    conn: &mut PgConnection,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<LockerRow>, i64), sqlx::Error> {
    // $1-$4: filters; then one parameter per search word; then query text, limit, offset.
    let words = filter.terms.as_ref().map(|t| t.words.clone()).unwrap_or_default();
    let conditions = filter.terms.as_ref().map(|t| t.conditions("p.search_document", 5)).unwrap_or_default();
    let predicate = format!(
        "WHERE ($1::text IS NULL OR l.status = $1) AND ($2::text IS NULL OR l.size = $2)
           AND ($3::uuid IS NULL OR l.point_id = $3) AND ($4::uuid IS NULL OR p.city_id = $4) {conditions}"
    );
    let next = 5 + words.len();
    let rows_sql = format!(
        "{SELECT} {predicate}
         ORDER BY word_similarity(lockers_fold(coalesce(${next}, '')), p.search_document) DESC, p.name, l.door_no, l.id
         LIMIT ${} OFFSET ${}",
        next + 1,
        next + 2
    );
    let count_sql = format!("SELECT count(*) FROM lockers l JOIN locker_points p ON p.id = l.point_id {predicate}");

    let mut rows = sqlx::query_as(sqlx::AssertSqlSafe(rows_sql))
        .bind(filter.status)
        .bind(filter.size)
        .bind(filter.point_id)
        .bind(filter.city_id);
    let mut count = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
        .bind(filter.status)
        .bind(filter.size)
        .bind(filter.point_id)
        .bind(filter.city_id);
    for word in &words {
        rows = rows.bind(word.clone());
        count = count.bind(word.clone());
    }
    let query = filter.terms.as_ref().map(|t| t.query.clone());
    let items = rows.bind(query).bind(limit).bind(offset).fetch_all(&mut *conn).await?;
    let total = count.fetch_one(conn).await?;
    Ok((items, total))
}

pub async fn by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<LockerRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE l.id = $1"))).bind(id).fetch_optional(conn).await
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the door number is already used at this point")]
    DoorTaken,
    #[error("the locker point does not exist")]
    PointMissing,
    #[error("the locker has exchanges on record")]
    HasHistory,
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        let Some(db) = e.as_database_error() else { return Self::Database(e) };
        match (db.code().as_deref(), db.constraint()) {
            (Some("23505"), Some("lockers_door_key")) => Self::DoorTaken,
            (Some("23503"), Some("lockers_point_id_fkey")) => Self::PointMissing,
            (Some("23503"), _) => Self::HasHistory,
            _ => Self::Database(e),
        }
    }
}

pub async fn create(conn: &mut PgConnection, point_id: Uuid, door_no: i32, size: Size) -> Result<Uuid, WriteError> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO lockers (id, point_id, door_no, size) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(point_id)
        .bind(door_no)
        .bind(size)
        .execute(conn)
        .await?;
    Ok(id)
}

/// Locks the locker row for a change and returns its status.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Status>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM lockers WHERE id = $1 FOR UPDATE").bind(id).fetch_optional(conn).await
}

pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    door_no: Option<i32>,
    size: Option<Size>,
    status: Option<Status>,
) -> Result<(), WriteError> {
    sqlx::query(
        "UPDATE lockers SET door_no = coalesce($2, door_no), size = coalesce($3, size),
             status = coalesce($4, status), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(door_no)
    .bind(size)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), WriteError> {
    sqlx::query("DELETE FROM lockers WHERE id = $1").bind(id).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_move_lockers_only_between_available_and_maintenance_when_free() {
        use Status::*;
        assert_eq!(admin_status_change(Available, Maintenance), Ok(()));
        assert_eq!(admin_status_change(Maintenance, Available), Ok(()));
        assert_eq!(admin_status_change(Available, Available), Ok(()));
        assert_eq!(admin_status_change(Available, Reserved), Err(LockerError::StatusNotSettable));
        assert_eq!(admin_status_change(Available, Occupied), Err(LockerError::StatusNotSettable));
        assert_eq!(admin_status_change(Reserved, Maintenance), Err(LockerError::InUse));
        assert_eq!(admin_status_change(Occupied, Available), Err(LockerError::InUse));
    }

    #[test]
    fn sizes_use_their_codes() {
        assert_eq!(serde_json::to_string(&Size::Xl).unwrap(), "\"XL\"");
        assert_eq!(serde_json::from_str::<Size>("\"M\"").unwrap(), Size::M);
        assert!(serde_json::from_str::<Size>("\"XXL\"").is_err());
    }
}
