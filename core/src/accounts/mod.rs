//! Accounts: users, their contacts and passwords, sessions and access tokens.

pub mod access_token;
pub mod contact;
pub mod expiry;
pub mod password;
pub mod sessions;
pub mod users;
