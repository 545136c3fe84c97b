//! The store's display name (any Unicode): trimmed, 1..=64 characters, no control characters and no
//! bidirectional overrides. Kept as sent otherwise (not normalised: NFC and NFD spellings differ).
use std::fmt;

use super::DomainError;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreName(String);

impl StoreName {
    /// Characters (Unicode scalar values), not bytes: "Café" is 4.
    pub const MAX_CHARS: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::EmptyName);
        }
        let chars = name.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(DomainError::NameTooLong(chars));
        }
        if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            return Err(DomainError::NameHasControlCharacters);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Bidi embeddings, overrides and isolates reorder the text around them when displayed ("Trojan
/// Source"): `Shop\u{202E}gnp.exe` shows as `Shopexe.png`. Marks (LRM, RLM) and joiners stay allowed.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for StoreName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_keeps_unicode() {
        assert_eq!(StoreName::parse("  My Shop ").unwrap().as_str(), "My Shop");
        assert_eq!(
            StoreName::parse("Café \"Zürich\" 🛒 'quoted' #1: yes")
                .unwrap()
                .as_str(),
            "Café \"Zürich\" 🛒 'quoted' #1: yes"
        );
        // Joiners make emoji sequences; they are not bidi controls.
        assert!(StoreName::parse("👩\u{200D}👩\u{200D}👧 שלום").is_ok());
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(StoreName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(
            StoreName::parse(&"é".repeat(65)),
            Err(DomainError::NameTooLong(65))
        );
        assert!(StoreName::parse(&"a".repeat(64)).is_ok());
        assert!(StoreName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn rejects_empty_and_control_characters() {
        assert_eq!(StoreName::parse(""), Err(DomainError::EmptyName));
        assert_eq!(StoreName::parse(" \t "), Err(DomainError::EmptyName));
        for bad in [
            "a\nb",
            "a\u{0}b",
            "tab\there",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}x",
            "Shop\u{202E}gnp.exe",
            "\u{202D}ltr",
            "iso\u{2067}late\u{2069}",
        ] {
            assert_eq!(
                StoreName::parse(bad),
                Err(DomainError::NameHasControlCharacters),
                "{bad:?}"
            );
        }
    }
}
