//! Passwords: the length rule and Argon2id hashing (m=19456 KiB, t=2, p=1, the
//! OWASP baseline). Hashing is CPU-bound and takes 19 MiB: the intake runs it
//! on the hashing pool (`accounts::hashing`), whose threads lend their own
//! memory (`hash_with`, `verify_with`); the CLI uses `spawn_blocking`.

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::HashSet;
use std::sync::LazyLock;
use subtle::ConstantTimeEq;

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

/// Argon2's memory cost in KiB, which is also its number of 1 KiB blocks.
pub const MEMORY_BLOCKS: usize = 19_456;

fn params() -> Params {
    // The parameters are constants within Argon2's limits, so this cannot fail.
    Params::new(MEMORY_BLOCKS as u32, 2, 1, None).unwrap_or_default()
}

fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// [`hash`], computed in `memory` (at least [`MEMORY_BLOCKS`] blocks) instead of a fresh allocation.
pub fn hash_with(password: &Password, memory: &mut [Block]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let mut out = [0u8; 32];
    hasher().hash_password_into_with_memory(password.expose().as_bytes(), raw_salt, &mut out, memory)?;
    let params = params();
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        Output::new(&out)?
    ))
}

/// [`verify`], computed in `memory` when the stored hash has our parameters
/// (every hash we write); any other valid PHC string is checked the usual way.
pub fn verify_with(candidate: &str, phc: &str, memory: &mut [Block]) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let ours = parsed.algorithm == argon2::ARGON2ID_IDENT
        && parsed.version == Some(0x13)
        && Params::try_from(&parsed).is_ok_and(|p| {
            (p.m_cost(), p.t_cost(), p.p_cost()) == (MEMORY_BLOCKS as u32, params().t_cost(), params().p_cost())
        });
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return false };
    if !ours {
        return hasher().verify_password(candidate.as_bytes(), &parsed).is_ok();
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let mut out = vec![0u8; expected.len()];
    hasher().hash_password_into_with_memory(candidate.as_bytes(), raw_salt, &mut out, memory).is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
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

    #[test]
    fn hashes_made_in_lent_memory_are_the_same_phc_hashes_both_ways() {
        let mut memory = vec![Block::default(); MEMORY_BLOCKS];
        let password = Password::parse("correct horse battery".into()).unwrap();
        let phc = hash_with(&password, &mut memory).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse battery", &phc), "the standard verifier reads it");
        let standard = hash(&password).unwrap();
        assert!(verify_with("correct horse battery", &standard, &mut memory), "and reads the standard one");
        assert!(!verify_with("correct horse battery!", &standard, &mut memory));
        assert!(!verify_with("anything", DUMMY_HASH, &mut memory));
        assert!(!verify_with("anything", "not a hash", &mut memory));
        // Other parameters (say, an older hash) still verify, the allocating way.
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let salt = SaltString::generate(&mut OsRng);
        let old = other.hash_password(b"correct horse battery", &salt).unwrap().to_string();
        assert!(verify_with("correct horse battery", &old, &mut memory));
        assert!(!verify_with("wrong horse battery", &old, &mut memory));
    }
}
