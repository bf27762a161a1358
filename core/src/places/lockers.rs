//! Lockers: the compartments of a locker point, their sizes and statuses, and
//! the rules admins change them by. Their SQL is in `store`, their audited
//! writes in `use_cases` (re-exported here).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::DbError;

pub use super::store::locker as by_id;
pub use super::use_cases::{create_locker as create, delete_locker as delete, update_locker as update};

/// A size by its code; stored as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text")]
pub enum Size {
    S,
    M,
    L,
    #[serde(rename = "XL")]
    #[sqlx(rename = "XL")]
    Xl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[schema(as = LockerStatus)]
pub enum Status {
    Available,
    Reserved,
    Occupied,
    Maintenance,
}

impl Status {
    /// The one "in use" rule: an exchange holds the locker (a reservation or an item).
    pub fn in_use(self) -> bool {
        matches!(self, Self::Reserved | Self::Occupied)
    }
}

/// A door number at its point: 1 to 9999.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorNo(i32);

impl DoorNo {
    pub const MAX: i32 = 9999;

    pub fn parse(n: i32) -> Option<Self> {
        (1..=Self::MAX).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// The ways a locker write is refused.
#[derive(Debug, thiserror::Error)]
pub enum LockerError {
    #[error("locker not found")]
    NotFound,
    #[error("admins can only set a locker `available` or `maintenance`")]
    StatusNotSettable,
    /// A change refused while an exchange holds the locker.
    #[error("the locker holds a reservation or an item")]
    InUse,
    /// A delete refused while an exchange holds the locker.
    #[error("the locker holds a reservation or an item")]
    NotEmpty,
    #[error("the door number is already used at this point")]
    DoorTaken,
    #[error("the locker point does not exist")]
    PointMissing,
    #[error("the locker has exchanges on record")]
    HasHistory,
    #[error(transparent)]
    Db(DbError),
}

impl LockerError {
    /// The one mapping of lockers' constraints, by name; unknown ones stay
    /// database errors (a 500), so a future table referring to lockers does
    /// not answer `locker_has_history` by accident.
    pub(crate) fn from_constraint(e: DbError) -> Self {
        match e.constraint() {
            Some("lockers_door_key") => Self::DoorTaken,
            Some("lockers_point_id_fkey") => Self::PointMissing,
            Some("items_locker_id_fkey" | "door_commands_locker_id_fkey") => Self::HasHistory,
            _ => Self::Db(e),
        }
    }
}

impl From<DbError> for LockerError {
    fn from(e: DbError) -> Self {
        Self::from_constraint(e)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct NewLocker {
    pub point_id: Uuid,
    pub door_no: DoorNo,
    pub size: Size,
}

/// An admin's change; `None` leaves a field.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockerChanges {
    pub door_no: Option<DoorNo>,
    pub size: Option<Size>,
    pub status: Option<Status>,
}

/// The admin's status change: only between `available` and `maintenance`, and
/// never while an exchange holds the locker.
pub fn admin_status_change(current: Status, target: Status) -> Result<(), LockerError> {
    if !matches!(target, Status::Available | Status::Maintenance) {
        return Err(LockerError::StatusNotSettable);
    }
    if current.in_use() && current != target {
        return Err(LockerError::InUse);
    }
    Ok(())
}

/// An admin's change to a locker whose status is `current`: the door and
/// size stay while an exchange holds it; the status follows [`admin_status_change`].
pub fn admin_change(current: Status, changes: &LockerChanges) -> Result<(), LockerError> {
    if current.in_use() && (changes.door_no.is_some() || changes.size.is_some()) {
        return Err(LockerError::InUse);
    }
    changes.status.map_or(Ok(()), |target| admin_status_change(current, target))
}

/// Only an empty locker (no reservation, no item) can be deleted.
pub fn can_delete(current: Status) -> Result<(), LockerError> {
    if current.in_use() { Err(LockerError::NotEmpty) } else { Ok(()) }
}

/// The audit action of an update: maintenance switches are named as such.
pub fn update_action(before: Status, after: Status) -> &'static str {
    match (before, after) {
        (Status::Available, Status::Maintenance) => "locker.maintenance_on",
        (Status::Maintenance, Status::Available) => "locker.maintenance_off",
        _ => "locker.update",
    }
}

/// A locker with the place it stands in. `Serialize` is the audit record's form.
#[derive(Debug, Clone, Serialize)]
pub struct Locker {
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

impl Locker {
    /// Whether its point is online (see [`crate::places::is_online`]).
    pub fn point_online(&self, now: DateTime<Utc>, doors_simulated: bool) -> bool {
        crate::places::is_online(self.last_heartbeat_at, now, doors_simulated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_move_lockers_only_between_available_and_maintenance_when_free() {
        use Status::*;
        assert!(admin_status_change(Available, Maintenance).is_ok());
        assert!(admin_status_change(Maintenance, Available).is_ok());
        assert!(admin_status_change(Available, Available).is_ok());
        assert!(matches!(admin_status_change(Available, Reserved), Err(LockerError::StatusNotSettable)));
        assert!(matches!(admin_status_change(Available, Occupied), Err(LockerError::StatusNotSettable)));
        assert!(matches!(admin_status_change(Reserved, Maintenance), Err(LockerError::InUse)));
        assert!(matches!(admin_status_change(Occupied, Available), Err(LockerError::InUse)));
    }

    #[test]
    fn a_locker_in_use_keeps_its_door_and_size_and_cannot_be_deleted() {
        use Status::*;
        let door = LockerChanges { door_no: DoorNo::parse(9), ..LockerChanges::default() };
        let size = LockerChanges { size: Some(Size::S), ..LockerChanges::default() };
        for current in [Reserved, Occupied] {
            assert!(current.in_use());
            assert!(matches!(admin_change(current, &door), Err(LockerError::InUse)));
            assert!(matches!(admin_change(current, &size), Err(LockerError::InUse)));
            assert!(matches!(can_delete(current), Err(LockerError::NotEmpty)));
            assert!(admin_change(current, &LockerChanges::default()).is_ok());
        }
        for current in [Available, Maintenance] {
            assert!(!current.in_use());
            assert!(admin_change(current, &door).is_ok() && admin_change(current, &size).is_ok());
            assert!(can_delete(current).is_ok());
        }
        let to_maintenance = LockerChanges { status: Some(Maintenance), ..LockerChanges::default() };
        assert!(matches!(admin_change(Reserved, &to_maintenance), Err(LockerError::InUse)));
    }

    #[test]
    fn door_numbers_run_from_1_to_9999() {
        assert_eq!(DoorNo::parse(1).map(DoorNo::get), Some(1));
        assert_eq!(DoorNo::parse(9999).map(DoorNo::get), Some(9999));
        for bad in [0, -1, 10_000, i32::MIN, i32::MAX] {
            assert!(DoorNo::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn maintenance_switches_are_audited_by_name() {
        use Status::*;
        assert_eq!(update_action(Available, Maintenance), "locker.maintenance_on");
        assert_eq!(update_action(Maintenance, Available), "locker.maintenance_off");
        assert_eq!(update_action(Available, Available), "locker.update");
        assert_eq!(update_action(Maintenance, Maintenance), "locker.update");
    }

    #[test]
    fn sizes_use_their_codes() {
        assert_eq!(serde_json::to_string(&Size::Xl).unwrap(), "\"XL\"");
        assert_eq!(serde_json::from_str::<Size>("\"M\"").unwrap(), Size::M);
        assert!(serde_json::from_str::<Size>("\"XXL\"").is_err());
    }
}
