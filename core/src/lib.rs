//! Lockers domain, one folder per aggregate: its types, pure rules, SQL and
//! the use cases every caller (HTTP handlers, workers, the operator CLI)
//! shares. No HTTP here.
//!
//! Aggregates: [`accounts`], [`places`], [`messaging`], [`audit`], [`jobs`]
//! (the exchange and billing come next, beside them); [`sweep`], the system
//! use case that runs every aggregate's expiry statements. Infrastructure:
//! [`config`], [`db`], [`rate_limit`], [`net`], [`telemetry`].

pub mod accounts;
pub mod audit;
pub mod billing;
pub mod config;
pub mod db;
pub mod exchange;
pub mod jobs;
pub mod messaging;
pub mod net;
pub mod places;
pub mod rate_limit;
pub mod sweep;
pub mod telemetry;
