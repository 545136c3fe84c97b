//! The store id: `store-` + 6 lowercase hex digits. It is also the store's namespace, its Helm release
//! and the name of its `Store` object, so it must stay a valid DNS label.
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};

use super::DomainError;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StoreId(String);

impl StoreId {
    pub const PREFIX: &'static str = "store-";
    const HEX_DIGITS: usize = 6;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = raw.strip_prefix(Self::PREFIX).is_some_and(|hex| {
            hex.len() == Self::HEX_DIGITS
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(DomainError::InvalidStoreId(raw.to_owned()))
        }
    }

    /// A fresh random id; the caller makes sure it is not taken (creating the `Store` fails if it is).
    pub fn random() -> Self {
        let n: u32 = rand::rng().random_range(0..=0xff_ffff);
        Self(format!("{}{n:06x}", Self::PREFIX))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StoreId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StoreId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_form() {
        assert_eq!(
            StoreId::parse("store-7016ff").unwrap().as_str(),
            "store-7016ff"
        );
        assert!(StoreId::parse("store-000000").is_ok());
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "store-",
            "store-7016f",
            "store-7016fff",
            "store-7016FF",
            "Store-7016ff",
            "store-7016fg",
            "shop-7016ff",
            "store-70 6ff",
            "store-7016ff\n",
            "../store-7016ff",
        ] {
            assert!(StoreId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn random_ids_parse() {
        for _ in 0..1000 {
            let id = StoreId::random();
            assert_eq!(StoreId::parse(id.as_str()).unwrap(), id);
        }
    }
}
