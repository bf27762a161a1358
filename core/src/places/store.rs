//! The SQL of places and lockers; every call names its operation for the logs.

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use super::lockers::{Locker, Size, Status};
use super::{Address, City, ControllerUrl, LockerPoint, PlaceKind, PlaceName, PointChanges, State};
use crate::db::{DbError, During};

// The domain types stay free of sqlx derives; their rows are read here.

impl FromRow<'_, PgRow> for State {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self { id: row.try_get("id")?, name: row.try_get("name")?, created_at: row.try_get("created_at")? })
    }
}

impl FromRow<'_, PgRow> for City {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            state_id: row.try_get("state_id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl FromRow<'_, PgRow> for LockerPoint {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            city_id: row.try_get("city_id")?,
            name: row.try_get("name")?,
            address: row.try_get("address")?,
            controller_url: row.try_get("controller_url")?,
            last_heartbeat_at: row.try_get("last_heartbeat_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

// States ----------------------------------------------------------------------

/// One page of states by name, and how many there are.
pub async fn list_states(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<(Vec<State>, i64), DbError> {
    let items: Vec<State> =
        sqlx::query_as("SELECT id, name, created_at FROM states ORDER BY lower(name), id LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await
            .during("list states")?;
    let total = sqlx::query_scalar("SELECT count(*) FROM states").fetch_one(conn).await.during("count states")?;
    Ok((items, total))
}

pub async fn state(conn: &mut PgConnection, id: Uuid) -> Result<Option<State>, DbError> {
    sqlx::query_as("SELECT id, name, created_at FROM states WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .during("read a state")
}

pub(super) async fn insert_state(conn: &mut PgConnection, name: &str) -> Result<State, DbError> {
    sqlx::query_as("INSERT INTO states (id, name) VALUES ($1, $2) RETURNING id, name, created_at")
        .bind(Uuid::now_v7())
        .bind(name)
        .fetch_one(conn)
        .await
        .during("create a state")
}

pub(super) async fn rename_state(conn: &mut PgConnection, id: Uuid, name: &str) -> Result<Option<State>, DbError> {
    sqlx::query_as("UPDATE states SET name = $2, updated_at = now() WHERE id = $1 RETURNING id, name, created_at")
        .bind(id)
        .bind(name)
        .fetch_optional(conn)
        .await
        .during("rename a state")
}

/// Deletes one place; a refusing foreign key (children) comes back as the error.
pub(super) async fn delete_place(conn: &mut PgConnection, kind: PlaceKind, id: Uuid) -> Result<bool, DbError> {
    let (sql, operation) = match kind {
        PlaceKind::State => ("DELETE FROM states WHERE id = $1", "delete a state"),
        PlaceKind::City => ("DELETE FROM cities WHERE id = $1", "delete a city"),
        PlaceKind::Point => ("DELETE FROM locker_points WHERE id = $1", "delete a locker point"),
    };
    let done = sqlx::query(sql).bind(id).execute(conn).await.during(operation)?;
    Ok(done.rows_affected() == 1)
}

/// Locks the states for one seeding at a time and counts them.
pub(super) async fn lock_and_count_states(conn: &mut PgConnection) -> Result<i64, DbError> {
    sqlx::query("LOCK TABLE states IN EXCLUSIVE MODE").execute(&mut *conn).await.during("lock the states")?;
    sqlx::query_scalar("SELECT count(*) FROM states").fetch_one(conn).await.during("count states")
}

// Cities ----------------------------------------------------------------------

/// One page of cities (optionally of one state) by name, and how many match.
pub async fn list_cities(
    conn: &mut PgConnection,
    state_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<City>, i64), DbError> {
    let items: Vec<City> = sqlx::query_as(
        "SELECT id, state_id, name, created_at FROM cities
         WHERE $1::uuid IS NULL OR state_id = $1 ORDER BY lower(name), id LIMIT $2 OFFSET $3",
    )
    .bind(state_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await
    .during("list cities")?;
    let total = sqlx::query_scalar("SELECT count(*) FROM cities WHERE $1::uuid IS NULL OR state_id = $1")
        .bind(state_id)
        .fetch_one(conn)
        .await
        .during("count cities")?;
    Ok((items, total))
}

pub async fn city(conn: &mut PgConnection, id: Uuid) -> Result<Option<City>, DbError> {
    sqlx::query_as("SELECT id, state_id, name, created_at FROM cities WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .during("read a city")
}

pub(super) async fn insert_city(conn: &mut PgConnection, state_id: Uuid, name: &str) -> Result<City, DbError> {
    sqlx::query_as(
        "INSERT INTO cities (id, state_id, name) VALUES ($1, $2, $3) RETURNING id, state_id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(state_id)
    .bind(name)
    .fetch_one(conn)
    .await
    .during("create a city")
}

pub(super) async fn update_city(
    conn: &mut PgConnection,
    id: Uuid,
    state_id: Option<Uuid>,
    name: Option<&str>,
) -> Result<Option<City>, DbError> {
    sqlx::query_as(
        "UPDATE cities SET state_id = coalesce($2, state_id), name = coalesce($3, name), updated_at = now()
         WHERE id = $1 RETURNING id, state_id, name, created_at",
    )
    .bind(id)
    .bind(state_id)
    .bind(name)
    .fetch_optional(conn)
    .await
    .during("update a city")
}

// Locker points ---------------------------------------------------------------

const POINT_COLUMNS: &str = "id, city_id, name, address, controller_url, last_heartbeat_at, created_at";

pub async fn point(conn: &mut PgConnection, id: Uuid) -> Result<Option<LockerPoint>, DbError> {
    let sql = format!("SELECT {POINT_COLUMNS} FROM locker_points WHERE id = $1");
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await.during("read a locker point")
}

/// Creates point `id` whose controller token (generation 0) hashes to `token_hash`.
pub(super) async fn insert_point(
    conn: &mut PgConnection,
    id: Uuid,
    city_id: Uuid,
    name: &str,
    address: &str,
    controller_url: Option<&str>,
    token_hash: &[u8],
) -> Result<LockerPoint, DbError> {
    let sql = format!(
        "INSERT INTO locker_points (id, city_id, name, address, controller_url, controller_token_hash)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {POINT_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(city_id)
        .bind(name)
        .bind(address)
        .bind(controller_url)
        .bind(token_hash)
        .fetch_one(conn)
        .await
        .during("create a locker point")
}

pub(super) async fn update_point(
    conn: &mut PgConnection,
    id: Uuid,
    changes: &PointChanges,
) -> Result<Option<LockerPoint>, DbError> {
    let sql = format!(
        "UPDATE locker_points SET city_id = coalesce($2, city_id), name = coalesce($3, name),
             address = coalesce($4, address),
             controller_url = CASE WHEN $5 THEN $6 ELSE controller_url END, updated_at = now()
         WHERE id = $1 RETURNING {POINT_COLUMNS}"
    );
    let url = changes.controller_url.as_ref();
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(changes.city_id)
        .bind(changes.name.as_ref().map(PlaceName::as_str))
        .bind(changes.address.as_ref().map(Address::as_str))
        .bind(url.is_some())
        .bind(url.and_then(|u| u.as_ref().map(ControllerUrl::as_str)))
        .fetch_optional(conn)
        .await
        .during("update a locker point")
}

/// Moves the point's controller token to its next generation and returns it;
/// none when there is no such point. The row stays locked until the commit,
/// so rotations of one point do not interleave.
pub(super) async fn next_token_generation(conn: &mut PgConnection, id: Uuid) -> Result<Option<i32>, DbError> {
    sqlx::query_scalar(
        "UPDATE locker_points SET controller_token_generation = controller_token_generation + 1, updated_at = now()
         WHERE id = $1 RETURNING controller_token_generation",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
    .during("rotate a controller token")
}

/// Replaces the controller token's hash.
pub(super) async fn set_token_hash(conn: &mut PgConnection, id: Uuid, hash: &[u8]) -> Result<(), DbError> {
    sqlx::query("UPDATE locker_points SET controller_token_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await
        .during("store a controller token's hash")?;
    Ok(())
}

/// The generation of the point's current controller token (what the door worker derives).
pub async fn controller_token_generation(conn: &mut PgConnection, point_id: Uuid) -> Result<Option<i32>, DbError> {
    sqlx::query_scalar("SELECT controller_token_generation FROM locker_points WHERE id = $1")
        .bind(point_id)
        .fetch_optional(conn)
        .await
        .during("read a controller token generation")
}

// Lockers ---------------------------------------------------------------------

impl FromRow<'_, PgRow> for Locker {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            point_id: row.try_get("point_id")?,
            door_no: row.try_get("door_no")?,
            size: row.try_get("size")?,
            status: row.try_get("status")?,
            inner_width_mm: row.try_get("inner_width_mm")?,
            inner_height_mm: row.try_get("inner_height_mm")?,
            inner_depth_mm: row.try_get("inner_depth_mm")?,
            point_name: row.try_get("point_name")?,
            address: row.try_get("address")?,
            city_id: row.try_get("city_id")?,
            city_name: row.try_get("city_name")?,
            state_id: row.try_get("state_id")?,
            state_name: row.try_get("state_name")?,
            last_heartbeat_at: row.try_get("last_heartbeat_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const LOCKER_SELECT: &str = "SELECT l.id, l.point_id, l.door_no, l.size, l.status,
        z.inner_width_mm, z.inner_height_mm, z.inner_depth_mm,
        p.name AS point_name, p.address, c.id AS city_id, c.name AS city_name, s.id AS state_id,
        s.name AS state_name, p.last_heartbeat_at, l.created_at
    FROM lockers l
    JOIN locker_sizes z ON z.code = l.size
    JOIN locker_points p ON p.id = l.point_id
    JOIN cities c ON c.id = p.city_id
    JOIN states s ON s.id = c.state_id";

pub async fn locker(conn: &mut PgConnection, id: Uuid) -> Result<Option<Locker>, DbError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{LOCKER_SELECT} WHERE l.id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
        .during("read a locker")
}

pub(super) async fn insert_locker(
    conn: &mut PgConnection,
    point_id: Uuid,
    door_no: i32,
    size: Size,
) -> Result<Uuid, DbError> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO lockers (id, point_id, door_no, size) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(point_id)
        .bind(door_no)
        .bind(size)
        .execute(conn)
        .await
        .during("create a locker")?;
    Ok(id)
}

/// Locks the locker row for a change and returns its status.
pub(super) async fn lock_locker(conn: &mut PgConnection, id: Uuid) -> Result<Option<Status>, DbError> {
    sqlx::query_scalar("SELECT status FROM lockers WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
        .during("lock a locker")
}

/// Whether an item holds `id` (reserved, stored or expired), whatever the locker's status says.
pub(super) async fn holds_item(conn: &mut PgConnection, id: Uuid) -> Result<bool, DbError> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM items WHERE locker_id = $1 AND status IN ('reserved', 'stored', 'expired'))",
    )
    .bind(id)
    .fetch_one(conn)
    .await
    .during("check a locker for items")
}

pub(super) async fn update_locker(
    conn: &mut PgConnection,
    id: Uuid,
    door_no: Option<i32>,
    size: Option<Size>,
    status: Option<Status>,
) -> Result<(), DbError> {
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
    .await
    .during("update a locker")?;
    Ok(())
}

pub(super) async fn delete_locker(conn: &mut PgConnection, id: Uuid) -> Result<(), DbError> {
    sqlx::query("DELETE FROM lockers WHERE id = $1").bind(id).execute(conn).await.during("delete a locker")?;
    Ok(())
}
