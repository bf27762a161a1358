//! Items: one exchange each. The states and who moves an item between them:
//!
//! ```text
//! reserved --drop-off, door closed--> stored --pickup code, door acked--> collected
//!    |                        |  \--pickup window over--> expired --return code, door acked--> returned
//!    |                        \--admin force-clear--> force_removed      (expired also: force_removed)
//!    \--not dropped off in time / sender cancels--> cancelled
//! ```
//! `reserved` is written by the deposit; `stored` by the controller's
//! `door_closed` after the deposit open; `collected`/`returned`/`force_removed`
//! when the controller acknowledges that open; `expired` and `cancelled` by
//! the sweep's use cases or the sender.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::db::{DbError, During};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Reserved,
    Stored,
    Collected,
    Expired,
    Returned,
    Cancelled,
    ForceRemoved,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 7] = [
        ItemStatus::Reserved,
        ItemStatus::Stored,
        ItemStatus::Collected,
        ItemStatus::Expired,
        ItemStatus::Returned,
        ItemStatus::Cancelled,
        ItemStatus::ForceRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Reserved => "reserved",
            ItemStatus::Stored => "stored",
            ItemStatus::Collected => "collected",
            ItemStatus::Expired => "expired",
            ItemStatus::Returned => "returned",
            ItemStatus::Cancelled => "cancelled",
            ItemStatus::ForceRemoved => "force_removed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether the item still holds its locker.
    pub fn is_active(self) -> bool {
        matches!(self, ItemStatus::Reserved | ItemStatus::Stored | ItemStatus::Expired)
    }

    /// The lifecycle's edges: whether `self -> to` is a transition at all.
    pub fn can_become(self, to: ItemStatus) -> bool {
        use ItemStatus::*;
        matches!(
            (self, to),
            (Reserved, Stored | Cancelled)
                | (Stored, Collected | Expired | ForceRemoved)
                | (Expired, Returned | ForceRemoved)
        )
    }
}

/// One item as stored, with where it is.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: Uuid,
    pub locker_id: Uuid,
    pub point_id: Uuid,
    pub door_no: i32,
    pub sender_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub receiver_phone: Option<String>,
    pub receiver_email: Option<String>,
    pub status: ItemStatus,
    pub reserved_at: DateTime<Utc>,
    pub dropoff_by: DateTime<Utc>,
    pub stored_at: Option<DateTime<Utc>>,
    pub pickup_by: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// When the deposit door command was issued (see `deposit::drop_off`).
    pub dropoff_requested_at: Option<DateTime<Utc>>,
    /// When the door first opened for the drop-off.
    pub dropoff_opened_at: Option<DateTime<Utc>>,
    /// When the sweep found the drop-off door left open (alerted once).
    pub door_left_open_at: Option<DateTime<Utc>>,
    /// The pickup window promised at deposit, in seconds.
    pub pickup_window_secs: i32,
    /// When the right pickup or return code was typed (the open is in flight, or failed).
    pub collect_requested_at: Option<DateTime<Utc>>,
    /// The pickup or return open failed for good: the item is inside, flagged for staff.
    pub pickup_failed_at: Option<DateTime<Utc>>,
    /// The end of an expired item's return window.
    pub return_by: Option<DateTime<Utc>>,
}

impl FromRow<'_, PgRow> for Item {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            locker_id: row.try_get("locker_id")?,
            point_id: row.try_get("point_id")?,
            door_no: row.try_get("door_no")?,
            sender_id: row.try_get("sender_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            receiver_phone: row.try_get("receiver_phone")?,
            receiver_email: row.try_get("receiver_email")?,
            status: ItemStatus::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "status".into(),
                source: format!("unexpected item status `{status}`").into(),
            })?,
            reserved_at: row.try_get("reserved_at")?,
            dropoff_by: row.try_get("dropoff_by")?,
            stored_at: row.try_get("stored_at")?,
            pickup_by: row.try_get("pickup_by")?,
            closed_at: row.try_get("closed_at")?,
            dropoff_requested_at: row.try_get("dropoff_requested_at")?,
            dropoff_opened_at: row.try_get("dropoff_opened_at")?,
            door_left_open_at: row.try_get("door_left_open_at")?,
            pickup_window_secs: row.try_get("pickup_window_secs")?,
            collect_requested_at: row.try_get("collect_requested_at")?,
            pickup_failed_at: row.try_get("pickup_failed_at")?,
            return_by: row.try_get("return_by")?,
        })
    }
}

/// The columns [`Item`] reads, from `items i JOIN lockers l`, as a literal for `concat!`.
macro_rules! item_columns {
    () => {
        "i.id, i.locker_id, l.point_id, l.door_no, i.sender_id, i.name, i.description, i.receiver_phone,
         i.receiver_email, i.status, i.reserved_at, i.dropoff_by, i.stored_at, i.pickup_by, i.closed_at,
         i.dropoff_requested_at, i.dropoff_opened_at, i.door_left_open_at, i.pickup_window_secs,
         i.collect_requested_at, i.pickup_failed_at, i.return_by"
    };
}
#[allow(unused_imports)] // for the other exchange modules that read items
pub(crate) use item_columns;

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<Item>, DbError> {
    sqlx::query_as(concat!(
        "SELECT ",
        item_columns!(),
        " FROM items i JOIN lockers l ON l.id = i.locker_id WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .during("load an item")
}

/// Loads and locks `id` for a transition (the caller's transaction holds the
/// row until it commits, so concurrent transitions of one item queue up).
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<Item>, DbError> {
    sqlx::query_as(concat!(
        "SELECT ",
        item_columns!(),
        " FROM items i JOIN lockers l ON l.id = i.locker_id WHERE i.id = $1 FOR UPDATE OF i"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .during("lock an item")
}

/// An item with the place it is at, as its sender (or an admin) reads it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub item: Item,
    pub point_name: String,
    pub point_address: String,
}

impl FromRow<'_, PgRow> for Listed {
    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            item: Item::from_row(row)?,
            point_name: row.try_get("point_name")?,
            point_address: row.try_get("point_address")?,
        })
    }
}

/// One item with its place.
pub async fn listed(conn: &mut PgConnection, id: Uuid) -> Result<Option<Listed>, DbError> {
    sqlx::query_as(concat!(
        "SELECT ",
        item_columns!(),
        ", p.name AS point_name, p.address AS point_address
         FROM items i JOIN lockers l ON l.id = i.locker_id JOIN locker_points p ON p.id = l.point_id
         WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
    .during("load an item with its place")
}

/// A page of items, newest first: `sender_id`'s, or everyone's; and how many there are.
pub async fn list(
    conn: &mut PgConnection,
    sender_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Listed>, i64), DbError> {
    let rows: Vec<Listed> = sqlx::query_as(concat!(
        "SELECT ",
        item_columns!(),
        ", p.name AS point_name, p.address AS point_address
         FROM items i JOIN lockers l ON l.id = i.locker_id JOIN locker_points p ON p.id = l.point_id
         WHERE ($1::uuid IS NULL OR i.sender_id = $1)
         ORDER BY i.created_at DESC, i.id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(sender_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await
    .during("list items")?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE ($1::uuid IS NULL OR sender_id = $1)")
        .bind(sender_id)
        .fetch_one(conn)
        .await
        .during("count items")?;
    Ok((rows, total))
}

/// A phone as others may see it: the country prefix and the last four digits,
/// `+91******3210`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let (head, tail) = (3, 4);
    let stars = "*".repeat(chars.len() - head - tail);
    format!(
        "{}{stars}{}",
        chars[..head].iter().collect::<String>(),
        chars[chars.len() - tail..].iter().collect::<String>()
    )
}

/// An email as others may see it: the first letter and the domain, `a***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in ItemStatus::ALL {
            assert_eq!(ItemStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ItemStatus::parse("lost"), None);
    }

    #[test]
    fn only_the_lifecycle_edges_are_transitions() {
        use ItemStatus::*;
        let allowed = [
            (Reserved, Stored),
            (Reserved, Cancelled),
            (Stored, Collected),
            (Stored, Expired),
            (Stored, ForceRemoved),
            (Expired, Returned),
            (Expired, ForceRemoved),
        ];
        for from in ItemStatus::ALL {
            for to in ItemStatus::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)), "{from:?} -> {to:?}");
            }
        }
        assert!(ItemStatus::ALL.iter().filter(|s| s.is_active()).count() == 3);
    }

    #[test]
    fn receiver_contacts_are_masked_to_a_hint() {
        assert_eq!(mask_phone("+919876543210"), "+91******3210");
        assert_eq!(mask_phone("+4420"), "*****");
        assert_eq!(mask_email("asha@example.com"), "a***@example.com");
        assert_eq!(mask_email("x@example.com"), "x***@example.com");
        assert!(!mask_phone("+919876543210").contains("98765"));
    }
}
