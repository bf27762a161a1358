//! Client methods on `TestApp`, one file per area.

pub mod accounts;
pub mod places;
