//! Messaging: one-time codes, the notification outbox every message goes
//! through, and what the sweep removes of both.

pub mod expiry;
pub mod otp;
pub mod outbox;
