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

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
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
