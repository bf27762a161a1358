//! Passwords: the length rule and Argon2id hashing (m=19456 KiB, t=2, p=1, the
//! OWASP baseline). Hashing is CPU-bound: async callers run it with
//! `spawn_blocking`.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::sync::LazyLock;

/// Shortest and longest passwords accepted (NIST SP 800-63B allows long passphrases).
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {MIN_LEN} characters")]
    TooShort,
    #[error("password must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("password is too common; choose one that is harder to guess")]
    TooCommon,
}

/// The 10,000 most common passwords (zxcvbn's list; see data/common-passwords.LICENSE).
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("../../data/common-passwords.txt").lines().map(str::trim).collect());

/// Whether `candidate` (compared in lower case) is on the common-passwords list.
pub fn is_common(candidate: &str) -> bool {
    COMMON.contains(candidate.to_lowercase().as_str())
}

/// A password that passed the length rule. Never logged.
pub struct Password(String);

impl Password {
    /// Length counts characters, not bytes; nothing else is imposed (no composition rules).
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let len = raw.chars().count();
        if len < MIN_LEN {
            return Err(PasswordError::TooShort);
        }
        if len > MAX_LEN {
            return Err(PasswordError::TooLong);
        }
        if is_common(&raw) {
            return Err(PasswordError::TooCommon);
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

fn hasher() -> Argon2<'static> {
    // The parameters are constants within Argon2's limits, so this cannot fail.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) with a fresh random salt.
pub fn hash(password: &Password) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher().hash_password(password.expose().as_bytes(), &salt)?.to_string())
}

/// A real Argon2id hash of a random string nobody knows, with our parameters.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Yp0Hh0xq9W6r0qWbJ6iN1yNj6Oc3h1rKxv7C5rPaeAc";

/// Whether `candidate` matches the stored PHC string. A malformed hash never matches.
pub fn verify(candidate: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| hasher().verify_password(candidate.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(Password::parse("short".into()).unwrap_err(), PasswordError::TooShort);
        assert!(Password::parse("ééééééé".into()).is_err(), "7 characters, 14 bytes");
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert_eq!(Password::parse("x".repeat(129)).unwrap_err(), PasswordError::TooLong);
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert_eq!(COMMON.len(), 10_000);
        assert_eq!(Password::parse("password".into()).unwrap_err(), PasswordError::TooCommon);
        assert_eq!(Password::parse("PassWord1".into()).unwrap_err(), PasswordError::TooCommon);
        assert_eq!(Password::parse("baseball".into()).unwrap_err(), PasswordError::TooCommon);
        assert!(Password::parse("violet kettle 42".into()).is_ok());
    }

    /// Stands in for a stored hash when the account does not exist, so an
    /// unknown account costs the same Argon2 work as a wrong password.
    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash_with_the_same_parameters() {
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify("anything", DUMMY_HASH));
    }

    #[test]
    fn hashes_verify_and_use_argon2id_with_the_baseline_parameters() {
        let phc = hash(&Password::parse("correct horse battery".into()).unwrap()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse battery!", &phc));
        assert!(!verify("anything", "not a hash"));
    }
}
