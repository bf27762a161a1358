//! The audited writes to places and lockers: rule -> write -> audit, each one
//! through [`audited`], whoever calls (admins over HTTP, the operator CLI).

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::lockers::{self, DoorNo, Locker, LockerChanges, LockerError, NewLocker, Size};
use super::store;
use super::{
    City, CityChanges, ControllerKey, ControllerToken, ControllerUrl, LockerPoint, NewPoint, PlaceError, PlaceKind,
    PlaceName, PointChanges,
};
use crate::audit::{Actor, Entry, audited};
use crate::db::DbError;

impl PlaceKind {
    /// The audit log's `target_type`.
    fn target_type(self) -> &'static str {
        match self {
            Self::State => "state",
            Self::City => "city",
            Self::Point => "locker_point",
        }
    }

    fn update_action(self) -> &'static str {
        match self {
            Self::State => "state.update",
            Self::City => "city.update",
            Self::Point => "locker_point.update",
        }
    }

    fn delete_action(self) -> &'static str {
        match self {
            Self::State => "state.delete",
            Self::City => "city.delete",
            Self::Point => "locker_point.delete",
        }
    }
}

/// A created value and its audit entry.
fn created<T: Serialize>(action: &'static str, target: &'static str, id: Uuid, value: T) -> (T, Entry<'static>) {
    let entry = Entry::change(action, target, id, None::<&()>, Some(&value));
    (value, entry)
}

/// A changed value and its audit entry, with the state before.
fn changed<T: Serialize>(
    action: &'static str,
    target: &'static str,
    id: Uuid,
    before: &T,
    after: T,
) -> (T, Entry<'static>) {
    let entry = Entry::change(action, target, id, Some(before), Some(&after));
    (after, entry)
}

/// Changes a place by `write`, read first by `read` for the audit's "before".
async fn update_place<T: Serialize>(
    conn: &mut PgConnection,
    by: &Actor,
    kind: PlaceKind,
    id: Uuid,
    read: impl AsyncFnOnce(&mut PgConnection, Uuid) -> Result<Option<T>, DbError>,
    write: impl AsyncFnOnce(&mut PgConnection) -> Result<Option<T>, DbError>,
) -> Result<T, PlaceError> {
    audited(conn, by, async |tx| {
        let before = read(tx, id).await?.ok_or(PlaceError::NotFound(kind))?;
        let after = write(tx).await?.ok_or(PlaceError::NotFound(kind))?;
        Ok(changed(kind.update_action(), kind.target_type(), id, &before, after))
    })
    .await
}

/// Deletes a place read by `read` (for the audit's "before"); children refuse it.
async fn delete_place<T: Serialize>(
    conn: &mut PgConnection,
    by: &Actor,
    kind: PlaceKind,
    id: Uuid,
    read: impl AsyncFnOnce(&mut PgConnection, Uuid) -> Result<Option<T>, DbError>,
) -> Result<(), PlaceError> {
    audited(conn, by, async |tx| {
        let before = read(tx, id).await?.ok_or(PlaceError::NotFound(kind))?;
        store::delete_place(tx, kind, id).await.map_err(|e| PlaceError::from_constraint(e, true))?;
        Ok(((), Entry::change(kind.delete_action(), kind.target_type(), id, Some(&before), None::<&()>)))
    })
    .await
}

// States ----------------------------------------------------------------------

pub async fn create_state(conn: &mut PgConnection, by: &Actor, name: PlaceName) -> Result<super::State, PlaceError> {
    audited(conn, by, async |tx| {
        let state = store::insert_state(tx, name.as_str()).await?;
        Ok(created("state.create", "state", state.id, state))
    })
    .await
}

pub async fn rename_state(
    conn: &mut PgConnection,
    by: &Actor,
    id: Uuid,
    name: PlaceName,
) -> Result<super::State, PlaceError> {
    let rename = async |tx: &mut PgConnection| store::rename_state(tx, id, name.as_str()).await;
    update_place(conn, by, PlaceKind::State, id, store::state, rename).await
}

/// Only a state without cities can be deleted.
pub async fn delete_state(conn: &mut PgConnection, by: &Actor, id: Uuid) -> Result<(), PlaceError> {
    delete_place(conn, by, PlaceKind::State, id, store::state).await
}

// Cities ----------------------------------------------------------------------

pub async fn create_city(
    conn: &mut PgConnection,
    by: &Actor,
    state_id: Uuid,
    name: PlaceName,
) -> Result<City, PlaceError> {
    audited(conn, by, async |tx| {
        let city = store::insert_city(tx, state_id, name.as_str()).await?;
        Ok(created("city.create", "city", city.id, city))
    })
    .await
}

/// Renames a city or moves it to another state.
pub async fn update_city(
    conn: &mut PgConnection,
    by: &Actor,
    id: Uuid,
    changes: CityChanges,
) -> Result<City, PlaceError> {
    let name = changes.name.as_ref().map(PlaceName::as_str);
    let update = async |tx: &mut PgConnection| store::update_city(tx, id, changes.state_id, name).await;
    update_place(conn, by, PlaceKind::City, id, store::city, update).await
}

/// Only a city without locker points can be deleted.
pub async fn delete_city(conn: &mut PgConnection, by: &Actor, id: Uuid) -> Result<(), PlaceError> {
    delete_place(conn, by, PlaceKind::City, id, store::city).await
}

// Locker points ---------------------------------------------------------------

/// Creates a point; the returned token (generation 0, derived by `key`) is the
/// only time it is shown.
pub async fn create_point(
    conn: &mut PgConnection,
    by: &Actor,
    key: &ControllerKey,
    new: NewPoint,
) -> Result<(LockerPoint, ControllerToken), PlaceError> {
    audited(conn, by, async |tx| {
        let id = Uuid::now_v7();
        let token = key.token(id, 0);
        let url = new.controller_url.as_ref().map(ControllerUrl::as_str);
        let hash = ControllerToken::digest(token.expose());
        let (name, address) = (new.name.as_str(), new.address.as_str());
        let point = store::insert_point(tx, id, new.city_id, name, address, url, &hash).await?;
        let (point, entry) = created("locker_point.create", "locker_point", point.id, point);
        Ok(((point, token), entry))
    })
    .await
}

pub async fn update_point(
    conn: &mut PgConnection,
    by: &Actor,
    id: Uuid,
    changes: PointChanges,
) -> Result<LockerPoint, PlaceError> {
    let update = async |tx: &mut PgConnection| store::update_point(tx, id, &changes).await;
    update_place(conn, by, PlaceKind::Point, id, store::point, update).await
}

/// Only a point without lockers can be deleted.
pub async fn delete_point(conn: &mut PgConnection, by: &Actor, id: Uuid) -> Result<(), PlaceError> {
    delete_place(conn, by, PlaceKind::Point, id, store::point).await
}

/// A new controller token (the next generation); the old one stops working at
/// once in both directions: its hash is gone, and the door worker derives the new one.
pub async fn rotate_controller_token(
    conn: &mut PgConnection,
    by: &Actor,
    key: &ControllerKey,
    id: Uuid,
) -> Result<ControllerToken, PlaceError> {
    audited(conn, by, async |tx| {
        let generation = store::next_token_generation(tx, id).await?.ok_or(PlaceError::NotFound(PlaceKind::Point))?;
        let token = key.token(id, generation);
        store::set_token_hash(tx, id, &ControllerToken::digest(token.expose())).await?;
        let entry = Entry::change("locker_point.rotate_token", "locker_point", id, None::<&()>, None::<&()>);
        Ok((token, entry))
    })
    .await
}

// Lockers ---------------------------------------------------------------------

pub async fn create_locker(conn: &mut PgConnection, by: &Actor, new: NewLocker) -> Result<Locker, LockerError> {
    audited(conn, by, async |tx| {
        let id = store::insert_locker(tx, new.point_id, new.door_no.get(), new.size).await?;
        let locker = store::locker(tx, id).await?.ok_or(LockerError::NotFound)?;
        Ok(created("locker.create", "locker", id, locker))
    })
    .await
}

/// Door number, size, and maintenance on or off; never while an exchange holds the locker.
pub async fn update_locker(
    conn: &mut PgConnection,
    by: &Actor,
    id: Uuid,
    changes: LockerChanges,
) -> Result<Locker, LockerError> {
    audited(conn, by, async |tx| {
        let current = store::lock_locker(tx, id).await?.ok_or(LockerError::NotFound)?;
        lockers::admin_change(current, &changes)?;
        // Back in service only when empty: a locker in maintenance may still
        // hold an item (a failed door, a door left open); force-clear it first.
        if changes.status == Some(lockers::Status::Available) && store::holds_item(tx, id).await? {
            return Err(LockerError::NotEmpty);
        }
        let before = store::locker(tx, id).await?.ok_or(LockerError::NotFound)?;
        store::update_locker(tx, id, changes.door_no.map(DoorNo::get), changes.size, changes.status).await?;
        let after = store::locker(tx, id).await?.ok_or(LockerError::NotFound)?;
        Ok(changed(lockers::update_action(before.status, after.status), "locker", id, &before, after))
    })
    .await
}

/// Only an empty locker (no reservation, no item) can be deleted; one with
/// exchanges on record keeps its history.
pub async fn delete_locker(conn: &mut PgConnection, by: &Actor, id: Uuid) -> Result<(), LockerError> {
    audited(conn, by, async |tx| {
        let current = store::lock_locker(tx, id).await?.ok_or(LockerError::NotFound)?;
        lockers::can_delete(current)?;
        let before = store::locker(tx, id).await?.ok_or(LockerError::NotFound)?;
        store::delete_locker(tx, id).await?;
        Ok(((), Entry::change("locker.delete", "locker", id, Some(&before), None::<&()>)))
    })
    .await
}

// The demo network ------------------------------------------------------------

/// One demo point: (state, city, point name, address).
pub type DemoPoint<'a> = (&'a str, &'a str, &'a str, &'a str);

/// What a seeding created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub states: usize,
    pub cities: usize,
    pub points: usize,
    pub lockers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("places already exist ({0} states); nothing seeded")]
    PlacesExist(i64),
    #[error(transparent)]
    Place(#[from] PlaceError),
}

impl From<DbError> for SeedError {
    fn from(e: DbError) -> Self {
        Self::Place(e.into())
    }
}

/// Creates `points`, each with one locker per entry of `doors` (door numbers
/// from 1), as one audited change; refused once any state exists. One seeding
/// at a time: the states table stays locked until the commit.
pub async fn seed_network(
    conn: &mut PgConnection,
    by: &Actor,
    key: &ControllerKey,
    points: &[DemoPoint<'_>],
    doors: &[Size],
) -> Result<Seeded, SeedError> {
    audited(conn, by, async |tx| {
        let existing = store::lock_and_count_states(tx).await?;
        if existing > 0 {
            return Err(SeedError::PlacesExist(existing));
        }
        let mut states: Vec<(&str, Uuid)> = Vec::new();
        let mut cities: Vec<(&str, Uuid)> = Vec::new();
        let mut lockers = 0;
        for &(state, city, name, address) in points {
            let state_id = match states.iter().find(|(n, _)| *n == state) {
                Some((_, id)) => *id,
                None => {
                    let id = store::insert_state(tx, state).await?.id;
                    states.push((state, id));
                    id
                }
            };
            let city_id = match cities.iter().find(|(n, _)| *n == city) {
                Some((_, id)) => *id,
                None => {
                    let id = store::insert_city(tx, state_id, city).await?.id;
                    cities.push((city, id));
                    id
                }
            };
            // The token is never shown: operators rotate one per point when they wire a controller.
            let id = Uuid::now_v7();
            let hash = ControllerToken::digest(key.token(id, 0).expose());
            let point = store::insert_point(tx, id, city_id, name, address, None, &hash).await?;
            for (door, &size) in (1..).zip(doors) {
                store::insert_locker(tx, point.id, door, size).await?;
                lockers += 1;
            }
        }
        let seeded = Seeded { states: states.len(), cities: cities.len(), points: points.len(), lockers };
        let entry = Entry {
            action: "demo.seed",
            target_type: "network",
            target_id: None,
            before: None,
            after: Some(serde_json::json!({ "points": points.len(), "lockers": lockers, "via": "lockers-admin" })),
        };
        Ok((seeded, entry))
    })
    .await
}
