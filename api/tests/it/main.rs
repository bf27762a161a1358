//! Integration tests: the real app over real HTTP, real PostgreSQL and Redis,
//! fake external servers that speak the real protocols.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod client;
mod fakes;
mod harness;

mod admin_cli;
mod auth;
mod engine_faults;
mod faults;
mod health;
mod housekeeping;
mod jobs;
mod limits;
mod outbox;
mod places;
mod startup;
