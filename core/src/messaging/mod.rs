//! Messaging: one-time codes and the notification outbox every message goes through.

pub mod otp;
pub mod outbox;
