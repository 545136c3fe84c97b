//! API tokens and the ids of users and tokens.
//!
//! A token is `sf_` + 32 random bytes (256 bits) in hex, shown once when it is made. Only its SHA-256
//! is stored: a fast hash is right here because the input is high-entropy random, so there is nothing
//! to brute-force (slow password hashes are for low-entropy secrets people choose). Requests are
//! matched by looking the digest up, then comparing digests in constant time.
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::DomainError;

/// A freshly generated token, in clear. Never logged: `Debug` hides it.
pub struct TokenSecret(String);

impl TokenSecret {
    pub const PREFIX: &'static str = "sf_";

    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        Self(format!("{}{}", Self::PREFIX, hex(&bytes)))
    }

    /// The clear text, for the one answer that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// SHA-256 of a token: what the database keeps.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Any presented text hashes; a wrong one simply matches nothing.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Constant time: how many bytes agree does not show in the timing.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $error:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;
            const HEX_DIGITS: usize = 16;

            pub fn random() -> Self {
                let bytes: [u8; 8] = rand::rng().random();
                Self(format!("{}{}", Self::PREFIX, hex(&bytes)))
            }

            pub fn parse(raw: &str) -> Result<Self, DomainError> {
                let valid = raw.strip_prefix(Self::PREFIX).is_some_and(|h| {
                    h.len() == Self::HEX_DIGITS
                        && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                });
                if valid {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(DomainError::$error(raw.to_owned()))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// A user's stable public id, `u-` + 16 hex digits (the name is for people, this is for URLs).
    UserId,
    "u-",
    InvalidUserId
);
random_id!(
    /// A token's public id, `t-` + 16 hex digits: what lists, revocation and the audit log name.
    TokenId,
    "t-",
    InvalidTokenId
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_random_and_prefixed() {
        let a = TokenSecret::generate();
        let b = TokenSecret::generate();
        assert!(a.expose().starts_with("sf_"));
        assert_eq!(a.expose().len(), 3 + 64, "256 bits in hex");
        assert!(a.expose()[3..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert!(
            !format!("{a:?}").contains(&a.expose()[3..]),
            "Debug hides the token"
        );
    }

    #[test]
    fn hashes_match_exactly_the_token() {
        let t = TokenSecret::generate();
        let stored = t.hash();
        assert!(stored.matches(&TokenHash::of(t.expose())));
        assert!(!stored.matches(&TokenHash::of(&format!("{} ", t.expose()))));
        assert!(!stored.matches(&TokenHash::of(&t.expose()[..t.expose().len() - 1])));
        assert!(!stored.matches(&TokenHash::of("")));
        assert_eq!(TokenHash::from_slice(stored.as_bytes()), Some(stored));
        assert_eq!(TokenHash::from_slice(&[0; 31]), None);
    }

    #[test]
    fn ids_parse_their_own_form_only() {
        let u = UserId::random();
        assert_eq!(UserId::parse(u.as_str()), Ok(u.clone()));
        assert!(
            TokenId::parse(u.as_str()).is_err(),
            "a user id is no token id"
        );
        let t = TokenId::random();
        assert_eq!(TokenId::parse(t.as_str()), Ok(t));
        for bad in [
            "",
            "u-",
            "u-0123456789abcde",
            "u-0123456789ABCDEF",
            "u-0123456789abcdef0",
            "x-0123456789abcdef",
        ] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(UserId::parse("u-0123456789abcdef").is_ok());
    }
}
