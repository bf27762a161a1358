//! Integration tests: the real app over real HTTP, real PostgreSQL and Redis,
//! fake external servers that speak the real protocols.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;
mod client;
mod fakes;
mod harness;

mod admin_cli;
mod auth;
mod backup;
mod billing;
mod doors;
mod e2e;
mod engine_faults;
mod exchange;
mod faults;
mod hardening;
mod health;
mod housekeeping;
mod jobs;
mod limits;
mod mail_relay;
mod messages;
mod observability;
mod openapi;
mod outbox;
mod pickup;
mod places;
mod providers;
mod startup;
mod web;
mod web_admin;
mod web_app;
mod web_e2e;
mod web_kiosk;
