//! The exchange: one item's way from reservation to collection (see the
//! lifecycle in the README). Every transition is one use case here, called
//! alike by the HTTP handlers, the controller events, the door worker and
//! the operator CLI.
//!
//! - [`doors`]: door commands, one per physical open, and their outcomes.
//! - [`events`]: what a point's controller reports (door opened or closed, heartbeats).
//! - [`lifecycle`]: what an item and its locker become when a door opens, fails or closes.
//! - [`alerts`]: telling staff a locker needs hands (mail, audit, log).
//! - [`codes`]: codes typed at a locker point (drop-off, pickup, return), unique within the point.
//! - [`items`]: the item, its states and who moves it between them.
//! - [`deposit`]: reserve, drop off, cancel, reservation expiry, a door left open.
//! - [`collection`]: pickup and return codes, collect, the pickup window.
//! - [`force_clear`]: an admin empties a locker.
//! - [`overview`]: what staff watch: items waiting, failed doors, items by state and place.

pub mod alerts;
pub mod codes;
pub mod collection;
pub mod deposit;
pub mod doors;
pub mod events;
pub mod force_clear;
pub mod items;
pub mod lifecycle;
pub mod overview;

use crate::db::DbError;
use crate::jobs::EnqueueError;

/// Why an exchange use case did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("no such door command")]
    UnknownCommand,
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}
