//! Client methods on `TestApp`, one file per area.

pub mod accounts;
pub mod billing;
pub mod exchange;
pub mod pickup;
pub mod places;
