//! Messaging: one-time codes, sending them under their limits, and the
//! notification outbox every message goes through.

pub mod codes;
pub mod otp;
pub mod outbox;
