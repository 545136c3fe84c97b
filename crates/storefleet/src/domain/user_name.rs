//! A user's name: unique and immutable, it is also the `owner` of the user's stores. ASCII letters,
//! digits and `.-_@`, 1..=64 characters: safe in logs, label values (see `Owner::label_value`) and URLs.
use std::fmt;

use super::DomainError;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserName(String);

impl UserName {
    pub const MAX_LEN: usize = 64;
    /// The built-in administrator, whose token comes from `--admin-token` (or is generated at first start).
    pub const ADMIN: &'static str = "admin";

    /// A new user's name: also not one of the names the control plane writes into the audit log
    /// itself (`anonymous`, `controller`, `storefleet`, `system`, in any case), so no user can read
    /// or pass for their entries.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if crate::storage::BUILT_IN_ACTORS
            .iter()
            .any(|reserved| raw.eq_ignore_ascii_case(reserved))
        {
            return Err(DomainError::ReservedUserName(raw.to_owned()));
        }
        Self::from_stored(raw)
    }

    /// A name as stored: users made before names were reserved keep theirs.
    pub fn from_stored(raw: &str) -> Result<Self, DomainError> {
        let valid = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::InvalidUserName)
        }
    }

    pub fn admin() -> Self {
        Self(Self::ADMIN.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_actor_names_are_reserved() {
        for reserved in [
            "anonymous",
            "Anonymous",
            "CONTROLLER",
            "storefleet",
            "system",
        ] {
            assert!(
                matches!(
                    UserName::parse(reserved),
                    Err(DomainError::ReservedUserName(_))
                ),
                "{reserved}"
            );
            assert!(
                UserName::from_stored(reserved).is_ok(),
                "stored: {reserved}"
            );
        }
        assert!(UserName::parse("anonymous2").is_ok());
    }

    #[test]
    fn accepts_the_documented_alphabet_only() {
        for good in [
            "alice",
            "bob.smith",
            "jane@example.com",
            "a_b-c",
            "A1",
            &"x".repeat(64),
        ] {
            assert_eq!(UserName::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "a b",
            "tab\t",
            "new\nline",
            "zoë",
            "a/b",
            "a:b",
            "<script>",
            &"x".repeat(65),
        ] {
            assert_eq!(
                UserName::parse(bad),
                Err(DomainError::InvalidUserName),
                "{bad:?}"
            );
        }
    }
}
