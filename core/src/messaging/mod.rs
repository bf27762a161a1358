//! Messaging: one-time codes, sending them under their limits, the
//! notification outbox every message goes through, the templates every
//! message is rendered from, what the sweep removes of codes and messages,
//! and the operator's view of failed messages.

pub mod admin;
pub mod codes;
pub mod expiry;
pub mod otp;
pub mod outbox;
pub mod templates;

#[cfg(test)]
mod every_message;
