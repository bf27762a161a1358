//! Lockers domain: types and rules, configuration, database access and job
//! payloads. No HTTP here.

pub mod access_token;
pub mod audit;
pub mod config;
pub mod contact;
pub mod db;
pub mod jobs;
pub mod lockers;
pub mod net;
pub mod notifications;
pub mod otp;
pub mod password;
pub mod places;
pub mod sessions;
pub mod telemetry;
pub mod users;
