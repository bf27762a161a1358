//! The network at a glance, for the admin console: how many points answer,
//! and each point's lockers by status. One query per figure whatever the
//! number of points (never a query per point).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::ONLINE_WINDOW_SECS;
use crate::db::{DbError, During};

/// Points online and offline now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct PointsOnline {
    pub online: i64,
    pub offline: i64,
}

/// How many points are online at `now`: the rule of [`super::is_online`] in
/// SQL (a heartbeat under [`ONLINE_WINDOW_SECS`] old, or every point under
/// simulated doors), so the count needs no row per point.
pub async fn points_online(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    doors_simulated: bool,
) -> Result<PointsOnline, DbError> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE online) AS online, count(*) FILTER (WHERE NOT online) AS offline
         FROM (SELECT $1 OR coalesce(last_heartbeat_at > $2 - make_interval(secs => $3), false) AS online
               FROM locker_points) AS p",
    )
    .bind(doors_simulated)
    .bind(now)
    .bind(ONLINE_WINDOW_SECS as f64)
    .fetch_one(conn)
    .await
    .during("count points online")
}

/// One point with its place and its lockers counted by status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PointLockers {
    pub point_id: Uuid,
    pub point_name: String,
    pub address: String,
    pub city_id: Uuid,
    pub city_name: String,
    pub state_name: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub available: i64,
    pub reserved: i64,
    pub occupied: i64,
    pub maintenance: i64,
}

impl PointLockers {
    pub fn total(&self) -> i64 {
        self.available + self.reserved + self.occupied + self.maintenance
    }

    pub fn is_online(&self, now: DateTime<Utc>, doors_simulated: bool) -> bool {
        super::is_online(self.last_heartbeat_at, now, doors_simulated)
    }
}

/// One page of points (of one city, or all) by state, city and name, each with
/// its lockers by status (one grouped scan of `lockers_point_status_idx`), and
/// how many points match.
pub async fn lockers_by_point(
    conn: &mut PgConnection,
    city_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PointLockers>, i64), DbError> {
    let rows: Vec<PointLockers> = sqlx::query_as(
        "SELECT p.id AS point_id, p.name AS point_name, p.address, c.id AS city_id, c.name AS city_name,
                s.name AS state_name, p.last_heartbeat_at,
                coalesce(l.available, 0) AS available, coalesce(l.reserved, 0) AS reserved,
                coalesce(l.occupied, 0) AS occupied, coalesce(l.maintenance, 0) AS maintenance
         FROM locker_points p
         JOIN cities c ON c.id = p.city_id
         JOIN states s ON s.id = c.state_id
         LEFT JOIN LATERAL (
             SELECT count(*) FILTER (WHERE status = 'available') AS available,
                    count(*) FILTER (WHERE status = 'reserved') AS reserved,
                    count(*) FILTER (WHERE status = 'occupied') AS occupied,
                    count(*) FILTER (WHERE status = 'maintenance') AS maintenance
             FROM lockers WHERE point_id = p.id) AS l ON true
         WHERE $1::uuid IS NULL OR p.city_id = $1
         ORDER BY lower(s.name), lower(c.name), lower(p.name), p.id
         LIMIT $2 OFFSET $3",
    )
    .bind(city_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await
    .during("count lockers by point")?;
    let total = sqlx::query_scalar("SELECT count(*) FROM locker_points WHERE $1::uuid IS NULL OR city_id = $1")
        .bind(city_id)
        .fetch_one(conn)
        .await
        .during("count points")?;
    Ok((rows, total))
}

/// Every locker of one point, by door: (id, door, size, status) as the
/// console's point page lists them.
pub async fn lockers_of_point(conn: &mut PgConnection, point_id: Uuid) -> Result<Vec<PointLocker>, DbError> {
    sqlx::query_as(
        "SELECT l.id, l.door_no, l.size, l.status, i.id AS item_id, i.status AS item_status
         FROM lockers l
         LEFT JOIN items i ON i.locker_id = l.id AND i.status IN ('reserved', 'stored', 'expired')
         WHERE l.point_id = $1 ORDER BY l.door_no",
    )
    .bind(point_id)
    .fetch_all(conn)
    .await
    .during("list a point's lockers")
}

/// A locker of a point and the item it holds, if any.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PointLocker {
    pub id: Uuid,
    pub door_no: i32,
    pub size: super::lockers::Size,
    pub status: super::lockers::Status,
    pub item_id: Option<Uuid>,
    pub item_status: Option<String>,
}
