//! Who owns a store: the name of the user who created it (see [`UserName`]). Looser than a user name,
//! because stores made before users existed, or with kubectl, carry whatever `spec.owner` says.
use std::fmt;

use super::{DomainError, UserName};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    const MAX_CHARS: usize = 253;

    pub fn admin() -> Self {
        Self("admin".to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::InvalidOwner("empty"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::InvalidOwner("too long"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DomainError::InvalidOwner(
                "contains whitespace or control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owner as a label value (`[A-Za-z0-9._-]`, at most 63, alphanumeric at both ends), for
    /// `kubectl get ns -l storefleet.dev/owner=...`. Lossy on purpose: `spec.owner` is the truth.
    pub fn label_value(&self) -> String {
        label_safe(&self.0)
    }
}

/// Any string as a label value (see [`Owner::label_value`]).
pub fn label_safe(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.is_empty() {
        "unknown".to_owned()
    } else {
        trimmed.to_owned()
    }
}

impl From<&UserName> for Owner {
    fn from(name: &UserName) -> Self {
        Self(name.as_str().to_owned())
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rejects_empty_blank_and_control() {
        assert!(Owner::parse("admin").is_ok());
        assert!(Owner::parse("jane@example.com").is_ok());
        for bad in ["", "a b", "a\nb", &"x".repeat(254)] {
            assert!(Owner::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn label_value_is_label_safe() {
        assert_eq!(Owner::admin().label_value(), "admin");
        assert_eq!(
            Owner::parse("jane@example.com").unwrap().label_value(),
            "jane-example.com"
        );
        assert_eq!(Owner::parse("@@@").unwrap().label_value(), "unknown");
        assert_eq!(Owner::parse("_x_").unwrap().label_value(), "x");
        let long = Owner::parse(&"a".repeat(100)).unwrap().label_value();
        assert_eq!(long.len(), 63);
    }
}
