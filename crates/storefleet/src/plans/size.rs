//! A volume size, as Kubernetes writes quantities (`2Gi`, `500M`, `1.5Ti`, `2147483648`): compared
//! by bytes (a PVC the API server canonicalised to `2048Mi` is the same size as a plan's `2Gi`), shown
//! as written.
use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Debug)]
pub struct StorageSize {
    bytes: u128,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a storage size (e.g. `2Gi`, `500Mi`, `10G`)")]
pub struct InvalidStorageSize(pub String);

impl StorageSize {
    pub fn parse(raw: &str) -> Result<Self, InvalidStorageSize> {
        let bad = || InvalidStorageSize(raw.chars().take(64).collect());
        let text = raw.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let multiplier: u128 = match suffix {
            "" => 1,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let scale = 10u128.pow(fraction.len() as u32);
        let whole: u128 = whole.parse().map_err(|_| bad())?;
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        let scaled = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(fraction))
            .and_then(|n| n.checked_mul(multiplier))
            .ok_or_else(bad)?;
        // Kubernetes rounds a fractional byte count up.
        let bytes = scaled.div_ceil(scale);
        if bytes == 0 {
            return Err(bad());
        }
        Ok(Self {
            bytes,
            text: text.to_owned(),
        })
    }

    pub fn bytes(&self) -> u128 {
        self.bytes
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for StorageSize {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for StorageSize {}
impl PartialOrd for StorageSize {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for StorageSize {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl fmt::Display for StorageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for StorageSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for StorageSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(s: &str) -> StorageSize {
        StorageSize::parse(s).unwrap()
    }

    #[test]
    fn compares_by_bytes() {
        assert_eq!(size("2Gi").bytes(), 2 << 30);
        assert_eq!(size("2Gi"), size("2048Mi"));
        assert_eq!(size("2Gi"), size("2147483648"));
        assert_eq!(size("1.5Gi").bytes(), 3 << 29);
        assert!(size("2Gi") > size("2G"));
        assert!(size("5Gi") > size("2Gi"));
        assert_eq!(size("10G").bytes(), 10_000_000_000);
        assert_eq!(size("2Gi").to_string(), "2Gi");
    }

    #[test]
    fn refuses_what_is_no_size() {
        for bad in [
            "", "Gi", "2GB", "-1Gi", "1e3", "two", "0", "1.2.3Gi", "2 Gi",
        ] {
            assert!(StorageSize::parse(bad).is_err(), "{bad:?}");
        }
    }
}
