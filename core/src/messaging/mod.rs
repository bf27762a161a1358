//! Messaging: one-time codes, sending them under their limits, the
//! notification outbox every message goes through, the templates every
//! message is rendered from, and what the sweep removes of codes and messages.

pub mod codes;
pub mod expiry;
pub mod otp;
pub mod outbox;
pub mod templates;

#[cfg(test)]
mod every_message;
