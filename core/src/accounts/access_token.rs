//! Access tokens: JWTs signed with HS256 (pinned), carrying `iss`, `aud`,
//! `exp`, `typ` and a `kid` header. Tokens are signed with the current key and
//! accepted under any configured key, so keys can rotate without logging
//! everyone out.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::{Config, Secret};

pub const ISSUER: &str = "lockers";
pub const AUDIENCE: &str = "lockers-api";
const TYPE_ACCESS: &str = "access";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Always `access`: a token of another kind is refused.
    pub typ: String,
    /// The user's session epoch when issued; a bump ends the token.
    pub ep: i32,
    /// The session (refresh-token family) the token belongs to: revoking it
    /// ends the token at once. Required, so no token outlives its session.
    pub sid: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid access token")]
pub struct InvalidToken;

struct Key {
    kid: String,
    decoding: DecodingKey,
}

/// The signing key and every key still accepted.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    accepted: Vec<Key>,
    ttl: Duration,
}

/// A key's id: the start of its SHA-256, so operators never have to name keys.
fn kid_of(secret: &Secret) -> String {
    Sha256::digest(secret.expose().as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl TokenKeys {
    pub fn new(current: &Secret, previous: &[Secret], ttl: Duration) -> Self {
        let accepted = std::iter::once(current)
            .chain(previous)
            .map(|s| Key { kid: kid_of(s), decoding: DecodingKey::from_secret(s.expose().as_bytes()) })
            .collect();
        Self { kid: kid_of(current), encoding: EncodingKey::from_secret(current.expose().as_bytes()), accepted, ttl }
    }

    pub fn from_config(config: &Config) -> Self {
        // `validated()` always fills the secret; the fallback only serves a Config built by hand.
        let current = config.jwt_secret.clone().unwrap_or_else(Secret::random);
        Self::new(&current, &config.jwt_previous_secrets, config.access_token_ttl)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed token for `user_id` at session epoch `epoch`, in session `session_id`.
    pub fn issue(&self, user_id: Uuid, epoch: i32, session_id: Uuid) -> Result<String, jsonwebtoken::errors::Error> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            typ: TYPE_ACCESS.into(),
            ep: epoch,
            sid: session_id,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }

    /// The claims of a token signed by an accepted key, with HS256, unexpired,
    /// for our issuer and audience, of type `access`.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken)?;
        if header.alg != Algorithm::HS256 {
            return Err(InvalidToken);
        }
        let kid = header.kid.ok_or(InvalidToken)?;
        let key = self.accepted.iter().find(|k| k.kid == kid).ok_or(InvalidToken)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `sid` is required by `Claims` itself: a token without one fails to decode.
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|_| InvalidToken)?;
        if data.claims.typ != TYPE_ACCESS {
            return Err(InvalidToken);
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&Secret::new(secret), &[], Duration::from_secs(900))
    }

    fn forge(header: &str, claims: &serde_json::Value, signature: &str) -> String {
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()), signature)
    }

    #[test]
    fn a_token_round_trips_and_carries_a_kid() {
        let keys = keys("s1");
        let user = Uuid::now_v7();
        let session = Uuid::now_v7();
        let token = keys.issue(user, 3, session).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid_of(&Secret::new("s1")).as_str()));
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.ep, claims.sid, claims.typ.as_str()), (user, 3, session, "access"));
    }

    #[test]
    fn rotated_keys_still_verify_old_tokens_and_unknown_keys_do_not() {
        let old = keys("old-secret");
        let token = old.issue(Uuid::now_v7(), 0, Uuid::now_v7()).unwrap();
        let rotated =
            TokenKeys::new(&Secret::new("new-secret"), &[Secret::new("old-secret")], Duration::from_secs(900));
        assert!(rotated.verify(&token).is_ok());
        assert!(keys("new-secret").verify(&token).is_err());
    }

    #[test]
    fn tampered_expired_foreign_audience_and_alg_none_tokens_are_refused() {
        let keys = keys("s1");
        let token = keys.issue(Uuid::now_v7(), 0, Uuid::now_v7()).unwrap();
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(keys.verify(&tampered), Err(InvalidToken));

        let now = chrono::Utc::now().timestamp();
        let kid = kid_of(&Secret::new("s1"));
        let sign = |claims: serde_json::Value| {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(kid.clone());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"s1")).unwrap()
        };
        let base = serde_json::json!({"sub": Uuid::now_v7(), "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60, "typ": "access", "ep": 0, "sid": Uuid::now_v7()});
        assert!(keys.verify(&sign(base.clone())).is_ok());
        let mut sessionless = base.clone();
        sessionless.as_object_mut().unwrap().remove("sid");
        assert_eq!(keys.verify(&sign(sessionless)), Err(InvalidToken), "a token without a session");
        for (field, value) in [
            ("exp", serde_json::json!(now - 60)),
            ("aud", serde_json::json!("someone-else")),
            ("iss", serde_json::json!("someone-else")),
            ("typ", serde_json::json!("refresh")),
        ] {
            let mut claims = base.clone();
            claims[field] = value;
            assert_eq!(keys.verify(&sign(claims)), Err(InvalidToken), "{field}");
        }
        let none = forge(&format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#), &base, "");
        assert_eq!(keys.verify(&none), Err(InvalidToken));
        let hs512 = {
            let mut header = Header::new(Algorithm::HS512);
            header.kid = Some(kid.clone());
            jsonwebtoken::encode(&header, &base, &EncodingKey::from_secret(b"s1")).unwrap()
        };
        assert_eq!(keys.verify(&hs512), Err(InvalidToken));
    }
}
