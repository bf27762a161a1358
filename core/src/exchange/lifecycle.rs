//! What a door's outcome means, by why it opened: the deposit flow
//! ([`super::deposit`]), collection and return ([`super::collection`]), or a
//! force-clear ([`super::force_clear`]). Called inside the transaction of the
//! door command's outcome or the controller's event.

use sqlx::PgConnection;
use uuid::Uuid;

use super::doors::{DoorCommand, Reason};
use super::{ExchangeError, collection, deposit, force_clear};
use crate::audit::Actor;

/// The controller acknowledged `command`'s open.
pub async fn door_opened(conn: &mut PgConnection, by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    match command.reason {
        Reason::Deposit => deposit::door_opened(conn, by, command).await,
        Reason::Pickup | Reason::Return => collection::door_opened(conn, by, command).await,
        Reason::ForceClear => force_clear::door_opened(conn, by, command).await,
    }
}

/// `command` ran out of retries or was refused.
pub async fn door_failed(
    conn: &mut PgConnection,
    by: &Actor,
    command: &DoorCommand,
    error: &str,
) -> Result<(), ExchangeError> {
    match command.reason {
        Reason::Deposit => deposit::door_failed(conn, by, command, error).await,
        Reason::Pickup | Reason::Return => collection::door_failed(conn, by, command, error).await,
        Reason::ForceClear => force_clear::door_failed(conn, by, command, error).await,
    }
}

/// The controller reports the door of `locker_id` open (after `command`, if known).
pub async fn door_reported_open(
    conn: &mut PgConnection,
    by: &Actor,
    locker_id: Uuid,
    command: Option<&DoorCommand>,
) -> Result<(), ExchangeError> {
    deposit::door_reported_open(conn, by, locker_id, command).await
}

/// The door was closed after `command`'s acknowledged open (first report only).
pub async fn door_closed(conn: &mut PgConnection, by: &Actor, command: &DoorCommand) -> Result<(), ExchangeError> {
    match command.reason {
        Reason::Deposit => deposit::door_closed(conn, by, command).await,
        Reason::Pickup | Reason::Return => collection::door_closed(conn, by, command).await,
        Reason::ForceClear => force_clear::door_closed(conn, by, command).await,
    }
}
