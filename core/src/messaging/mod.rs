//! Messaging: one-time codes, sending them under their limits, the
//! notification outbox every message goes through, and what the sweep removes
//! of codes and messages; the operator's view of failed messages.

pub mod admin;
pub mod codes;
pub mod expiry;
pub mod otp;
pub mod outbox;
