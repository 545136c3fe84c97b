//! A store's own domain as the platform holds it: parsed once at the edge, so everything after
//! (the claim object's name, the route's hostname, the certificate's DNS name) is a valid name.
//!
//! The rules, in order:
//! - a wildcard (`*`) is refused: a store answers on names it proves it holds, one by one;
//! - one trailing dot (the fully qualified spelling, `shop.example.com.`) is dropped: it names the
//!   same host, and Gateway API hostnames, certificates and WordPress's URL take it without the dot.
//!   Two dots, or a dot alone, are refused (an empty label);
//! - IDNA (UTS 46, with the STD3 rules and DNS lengths): Unicode becomes punycode, letters become
//!   lowercase, labels of more than 63 bytes and names of more than 253 are refused;
//! - the public suffix list: the name must be under a suffix the list knows (ICANN or private) and
//!   not be a suffix itself (`co.uk`, `github.io`: nobody's own domain);
//! - never the platform's base domain nor a name under it: those are the stores' own hosts.
use std::fmt;

/// A domain in ASCII (punycode), lowercase, without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a domain was refused; shown to API clients as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainNameError {
    #[error("the domain is empty")]
    Empty,
    #[error("`{0}` is a wildcard; add each name on its own")]
    Wildcard(String),
    #[error(
        "`{0}` is not a valid domain name (IDNA: letters, digits and `-` per label, labels of 1 to 63 bytes, at most 253 bytes in all)"
    )]
    Invalid(String),
    #[error("`{0}` has only one label; give the full domain, e.g. `shop.example.com`")]
    SingleLabel(String),
    #[error("`{0}` is not under a known public suffix (top-level domain)")]
    UnknownSuffix(String),
    #[error("`{0}` is a public suffix, which nobody owns; give a domain under it")]
    PublicSuffix(String),
    #[error("`{0}` is the platform's own domain or under it; stores already answer there")]
    PlatformDomain(String),
}

impl DomainName {
    /// At most this many bytes in ASCII (DNS's limit, without the trailing dot).
    pub const MAX_LEN: usize = 253;

    /// `base_domain` is the platform's (`--base-domain`), in ASCII.
    pub fn parse(raw: &str, base_domain: &str) -> Result<Self, DomainNameError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(DomainNameError::Empty);
        }
        if raw.contains('*') {
            return Err(DomainNameError::Wildcard(raw.to_owned()));
        }
        let invalid = || DomainNameError::Invalid(raw.to_owned());
        let without_dot = raw.strip_suffix('.').unwrap_or(raw);
        if without_dot.is_empty() || without_dot.ends_with('.') {
            return Err(invalid());
        }
        // Strict: STD3 rules (no `_`, spaces or other ASCII punctuation) and DNS lengths.
        let ascii = idna::domain_to_ascii_strict(without_dot).map_err(|_| invalid())?;
        if ascii.is_empty() || ascii.len() > Self::MAX_LEN || ascii.ends_with('.') {
            return Err(invalid());
        }
        if !ascii.contains('.') {
            return Err(DomainNameError::SingleLabel(ascii));
        }
        let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
        if ascii == base || ascii.ends_with(&format!(".{base}")) {
            return Err(DomainNameError::PlatformDomain(ascii));
        }
        let suffix = psl::suffix(ascii.as_bytes()).ok_or_else(invalid)?;
        if !suffix.is_known() {
            return Err(DomainNameError::UnknownSuffix(ascii));
        }
        if psl::domain(ascii.as_bytes()).is_none() {
            return Err(DomainNameError::PublicSuffix(ascii));
        }
        Ok(Self(ascii))
    }

    /// A name already parsed once (a Store's `spec.domains`, a claim's name): parsed again without
    /// the platform check, which it passed when it was added.
    pub fn parse_stored(raw: &str) -> Option<Self> {
        Self::parse(raw, "invalid.invalid").ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How a person reads it (punycode labels decoded); for messages only.
    pub fn unicode(&self) -> String {
        idna::domain_to_unicode(&self.0).0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "shops.example.net";

    fn ok(raw: &str) -> String {
        DomainName::parse(raw, BASE)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .as_str()
            .to_owned()
    }

    fn err(raw: &str) -> DomainNameError {
        DomainName::parse(raw, BASE).expect_err(raw)
    }

    #[test]
    fn the_validation_table() {
        // Plain, uppercase, trailing dot, surrounding whitespace.
        assert_eq!(ok("shop.example.com"), "shop.example.com");
        assert_eq!(ok("Shop.EXAMPLE.com"), "shop.example.com");
        assert_eq!(ok("shop.example.com."), "shop.example.com");
        assert_eq!(ok(" shop.example.com "), "shop.example.com");
        // IDNA: Unicode to punycode, and its uppercase folds too.
        assert_eq!(ok("bücher.com"), "xn--bcher-kva.com");
        assert_eq!(ok("BÜCHER.de"), "xn--bcher-kva.de");
        assert_eq!(ok("xn--bcher-kva.de"), "xn--bcher-kva.de");
        assert_eq!(ok("例え.jp"), "xn--r8jz45g.jp");
        // Public suffixes: a name under `co.uk` is fine, `co.uk` itself is nobody's.
        assert_eq!(ok("shop.co.uk"), "shop.co.uk");
        assert_eq!(ok("my-shop.github.io"), "my-shop.github.io");
        assert!(matches!(err("co.uk"), DomainNameError::PublicSuffix(_)));
        assert!(matches!(err("github.io"), DomainNameError::PublicSuffix(_)));
        assert!(matches!(
            err("shop.notatld"),
            DomainNameError::UnknownSuffix(_)
        ));
        // Wildcards, single labels, empty labels.
        assert!(matches!(err("*.example.com"), DomainNameError::Wildcard(_)));
        assert!(matches!(err("com"), DomainNameError::SingleLabel(_)));
        assert!(matches!(err("localhost"), DomainNameError::SingleLabel(_)));
        assert_eq!(err(""), DomainNameError::Empty);
        for bad in [
            ".",
            "shop.example.com..",
            ".shop.example.com",
            "shop..example.com",
            "shop_1.example.com",
            "shop example.com",
            "-shop.example.com",
            "shop-.example.com",
            "shop.example.com/x",
            "user@shop.example.com",
            "shop.example.com:8080",
            "1.2.3.4.5",
        ] {
            assert!(
                matches!(
                    err(bad),
                    DomainNameError::Invalid(_) | DomainNameError::UnknownSuffix(_)
                ),
                "{bad:?}: {:?}",
                err(bad)
            );
        }
        // Lengths: a label of 63 is fine, 64 is not; 253 in all is fine, 254 is not.
        let label63 = "a".repeat(63);
        assert_eq!(
            ok(&format!("{label63}.example.com")),
            format!("{label63}.example.com")
        );
        assert!(matches!(
            err(&format!("{}.example.com", "a".repeat(64))),
            DomainNameError::Invalid(_)
        ));
        let long = |total: usize| {
            let tail = ".example.com";
            let mut labels = Vec::new();
            let mut left = total - tail.len();
            while left > 0 {
                let n = left.min(62);
                labels.push("a".repeat(n));
                left = left.saturating_sub(n + 1);
            }
            let name = format!("{}{tail}", labels.join("."));
            name[name.len() - total..]
                .trim_start_matches('.')
                .to_owned()
        };
        let max = long(253);
        assert_eq!(max.len(), 253);
        assert_eq!(ok(&max), max);
        let over = format!("b{max}");
        assert_eq!(over.len(), 254);
        assert!(matches!(err(&over), DomainNameError::Invalid(_)));
        // The platform's own domain and every name under it.
        for own in [BASE, "SHOPS.example.net.", "store-7016ff.shops.example.net"] {
            assert!(
                matches!(err(own), DomainNameError::PlatformDomain(_)),
                "{own}"
            );
        }
        // A sibling of the base domain is someone's own domain.
        assert_eq!(ok("shop.example.net"), "shop.example.net");
    }

    #[test]
    fn messages_name_the_domain_and_read_back_in_unicode() {
        let e = err("*.example.com");
        assert!(e.to_string().contains("*.example.com"), "{e}");
        let d = DomainName::parse("bücher.com", BASE).unwrap();
        assert_eq!(d.unicode(), "bücher.com");
        assert_eq!(DomainName::parse_stored("xn--bcher-kva.com"), Some(d));
    }
}
