//! Lockers domain: types and rules, configuration, database access and job
//! payloads. No HTTP here.

pub mod config;
pub mod contact;
pub mod db;
pub mod jobs;
pub mod notifications;
pub mod password;
pub mod telemetry;
