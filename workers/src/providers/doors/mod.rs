//! Door drivers: how a door command reaches a locker point's controller.
//! `simulated` acknowledges every open and reports the door closed, for a
//! single machine; `http` speaks protocol v1 to each point's controller.

mod http;
mod simulated;

use async_trait::async_trait;
use lockers_core::exchange::doors::Outbound;

pub use http::HttpDoors;
pub use simulated::SimulatedDoors;

/// What a controller said about one open.
#[derive(Debug)]
pub enum DoorError {
    /// Worth trying again: a 5xx, a timeout, a refused connection.
    Transient(String),
    /// Will never work: a 4xx (`409 jammed`, a wrong token), a bad URL.
    Permanent(String),
}

impl std::fmt::Display for DoorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DoorError::Transient(m) => write!(f, "transient: {m}"),
            DoorError::Permanent(m) => write!(f, "permanent: {m}"),
        }
    }
}

#[async_trait]
pub trait DoorDriver: Send + Sync {
    fn name(&self) -> &'static str;
    /// Opens the door of `command` (its id is the `Idempotency-Key`).
    async fn open(&self, command: &Outbound) -> Result<(), DoorError>;
    /// Whether this driver reports the door closed itself, right after the
    /// open (the simulated one does; real controllers send an event).
    fn reports_closed(&self) -> bool;
}
