//! A plan's name: what `POST /stores` and `PATCH /stores/{id}` take and `spec.plan` holds. Which
//! names exist is the platform's business (the plan table); this type only says what a name may look
//! like, so a name from a request or a config file is safe in a label, a message and a helm value.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a plan name (1 to {max} lowercase letters, digits or `-`, starting with a letter)",
    max = PlanName::MAX_LEN
)]
pub struct InvalidPlanName(pub String);

impl PlanName {
    pub const MAX_LEN: usize = 32;
    /// The same rule as a regex, for the CRD schema.
    pub const PATTERN: &'static str = r"^[a-z][a-z0-9-]{0,31}$";

    pub fn parse(raw: &str) -> Result<Self, InvalidPlanName> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.as_bytes()[0].is_ascii_lowercase()
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            // Cut and escaped: the name is echoed in a 422.
            Err(InvalidPlanName(
                raw.chars()
                    .take(64)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PlanName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PlanName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["small", "medium", "large", "xl-2", "a"] {
            assert_eq!(PlanName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "Small",
            "2xl",
            "-a",
            "a_b",
            "a b",
            "smäll",
            &"a".repeat(33),
        ] {
            assert!(PlanName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
