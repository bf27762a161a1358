use async_trait::async_trait;
use lockers_core::exchange::doors::Outbound;

use super::{DoorDriver, DoorError};

/// Opens every door at once and closes it again: development and demos only
/// (production refuses it).
pub struct SimulatedDoors;

#[async_trait]
impl DoorDriver for SimulatedDoors {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn open(&self, command: &Outbound) -> Result<(), DoorError> {
        tracing::info!(command_id = %command.command_id, door_no = command.door_no, reason = command.reason.as_str(),
            "simulated door opened");
        Ok(())
    }

    fn reports_closed(&self) -> bool {
        true
    }
}
