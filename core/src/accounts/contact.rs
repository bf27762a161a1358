//! Ways to reach a person: email addresses and E.164 phone numbers, parsed once
//! on the way in so the rest of the code never re-validates them.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("not a valid email address")]
    InvalidEmail,
    #[error("not a valid phone number in E.164 form, e.g. +919876543210")]
    InvalidPhone,
    #[error("not an email address or an E.164 phone number")]
    InvalidIdentifier,
}

/// An email address, normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` with a plausible local part and domain; at most 254 bytes.
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        let s = raw.trim().to_lowercase();
        let (local, domain) = s.rsplit_once('@').ok_or(ContactError::InvalidEmail)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if s.len() > 254 || !local_ok || !domain_ok {
            return Err(ContactError::InvalidEmail);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number in E.164: `+`, a country code, at most 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Accepts `+` and 7 to 15 digits, the first not 0; spaces, dashes and dots are dropped.
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        let s: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.')).collect();
        let digits = s.strip_prefix('+').ok_or(ContactError::InvalidPhone)?;
        let ok =
            (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
        if !ok {
            return Err(ContactError::InvalidPhone);
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a person is named in a request: an email address or a phone number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Contact {
    Email(Email),
    Phone(Phone),
}

impl Contact {
    /// A leading `+` means a phone number; anything with `@` an email address.
    pub fn parse(raw: &str) -> Result<Self, ContactError> {
        let s = raw.trim();
        if s.starts_with('+') {
            Phone::parse(s).map(Contact::Phone)
        } else if s.contains('@') {
            Email::parse(s).map(Contact::Email)
        } else {
            Err(ContactError::InvalidIdentifier)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Contact::Email(e) => e.as_str(),
            Contact::Phone(p) => p.as_str(),
        }
    }
}

macro_rules! string_newtype_impls {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = ContactError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_newtype_impls!(Email);
string_newtype_impls!(Phone);

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_to_lower_case() {
        assert_eq!(Email::parse("  Asha@Example.COM ").unwrap().as_str(), "asha@example.com");
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in ["", "a", "a@", "@b.com", "a@b", "a@@b.com", "a..b@c.com", "a b@c.com", "a@-b.com", "a@b..com"] {
            assert_eq!(Email::parse(bad), Err(ContactError::InvalidEmail), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn phones_must_be_e164() {
        assert_eq!(Phone::parse("+91 98765-43210").unwrap().as_str(), "+919876543210");
        for bad in ["9876543210", "+0123456789", "+12345", "+1234567890123456", "+91abc4567890"] {
            assert_eq!(Phone::parse(bad), Err(ContactError::InvalidPhone), "{bad}");
        }
    }

    #[test]
    fn an_identifier_is_an_email_or_a_phone() {
        assert!(matches!(Contact::parse("+919876543210"), Ok(Contact::Phone(_))));
        assert!(matches!(Contact::parse("x@y.in"), Ok(Contact::Email(_))));
        assert_eq!(Contact::parse("bob"), Err(ContactError::InvalidIdentifier));
    }
}
