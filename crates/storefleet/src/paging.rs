//! Pages of long lists (`GET /stores`, `GET /audit`): the page size and the opaque cursors.
//!
//! A cursor is a position in a list's order, never an offset: the next page is "what comes after
//! this position", so stores created or deleted between two requests shift nothing and nothing that
//! existed throughout is skipped or repeated (keyset paging). It is URL-safe base64 (no padding) of
//! a short versioned text. It holds no secret and grants nothing: it only says where to continue in
//! the list the caller may see anyway, so it is not signed (replicas would need a shared key, and a
//! restart would void every open cursor). It is strictly parsed: anything but a cursor exactly as
//! this code writes it, or one of another list, is refused.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// Longer input is refused before decoding (a store cursor is well under 100 characters).
const CURSOR_MAX: usize = 400;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("limit must be between 1 and {max}")]
    LimitOutOfRange { max: u32 },
    #[error(
        "cursor is not one this list answered (pass `next_cursor` of the previous page as it was)"
    )]
    BadCursor,
}

/// How many entries one page holds: 1 to the list's maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u32);

impl Limit {
    pub fn parse(raw: u32, max: u32) -> Result<Self, PagingError> {
        if (1..=max).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(PagingError::LimitOutOfRange { max })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// A position in the list of stores (creation time, then store id): the last store of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCursor {
    pub created: DateTime<Utc>,
    /// The Store object's name. Usually a store id, but Stores made with kubectl may have any
    /// Kubernetes name, so this is checked as one (lowercase letters, digits, `-` and `.`).
    pub name: String,
}

impl StoreCursor {
    const KIND: &'static str = "s1";
    const NAME_MAX: usize = 253;

    pub fn encode(&self) -> String {
        wrap(&format!(
            "{}:{}:{}:{}",
            Self::KIND,
            self.created.timestamp(),
            self.created.timestamp_subsec_nanos(),
            self.name
        ))
    }

    pub fn parse(raw: &str) -> Result<Self, PagingError> {
        let text = unwrap(raw)?;
        let mut parts = text.splitn(4, ':');
        let (Some(Self::KIND), Some(secs), Some(nanos), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PagingError::BadCursor);
        };
        let secs: i64 = secs.parse().map_err(|_| PagingError::BadCursor)?;
        let nanos: u32 = nanos.parse().map_err(|_| PagingError::BadCursor)?;
        let created = DateTime::from_timestamp(secs, nanos).ok_or(PagingError::BadCursor)?;
        let name_ok = (1..=Self::NAME_MAX).contains(&name.len())
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'));
        if !name_ok {
            return Err(PagingError::BadCursor);
        }
        let cursor = Self {
            created,
            name: name.to_owned(),
        };
        canonical(raw, cursor, Self::encode)
    }
}

/// A position in the audit log (newest first): the id of a page's last, oldest, entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub before_id: i64,
}

impl AuditCursor {
    const KIND: &'static str = "a1";

    pub fn encode(&self) -> String {
        wrap(&format!("{}:{}", Self::KIND, self.before_id))
    }

    pub fn parse(raw: &str) -> Result<Self, PagingError> {
        let text = unwrap(raw)?;
        let id = text
            .strip_prefix(Self::KIND)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or(PagingError::BadCursor)?;
        canonical(raw, Self { before_id: id }, Self::encode)
    }
}

fn wrap(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn unwrap(raw: &str) -> Result<String, PagingError> {
    if raw.is_empty() || raw.len() > CURSOR_MAX {
        return Err(PagingError::BadCursor);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| PagingError::BadCursor)?;
    String::from_utf8(bytes).map_err(|_| PagingError::BadCursor)
}

/// Only the one spelling this code writes is a cursor: a number with a `+` or leading zeros, or
/// the same text in other base64, is someone's own making.
fn canonical<T>(raw: &str, cursor: T, encode: impl Fn(&T) -> String) -> Result<T, PagingError> {
    if encode(&cursor) == raw {
        Ok(cursor)
    } else {
        Err(PagingError::BadCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn store_cursors_round_trip_and_are_url_safe() {
        for (created, name) in [
            (
                DateTime::parse_from_rfc3339("2026-12-02T09:07:22Z").unwrap(),
                "store-7016ff",
            ),
            (
                DateTime::parse_from_rfc3339("1999-01-01T00:00:00.123456789Z").unwrap(),
                "made-with.kubectl",
            ),
        ] {
            let cursor = StoreCursor {
                created: created.with_timezone(&Utc),
                name: name.into(),
            };
            let text = cursor.encode();
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text}"
            );
            assert_eq!(StoreCursor::parse(&text), Ok(cursor));
        }
        // The format is fixed: a cursor written by an earlier build must still read.
        assert_eq!(
            StoreCursor::parse("czE6MTc2NDY2NjQ0MjowOnN0b3JlLTcwMTZmZg").unwrap(),
            StoreCursor {
                created: DateTime::parse_from_rfc3339("2025-12-02T09:07:22Z")
                    .unwrap()
                    .with_timezone(&Utc),
                name: "store-7016ff".into(),
            }
        );
    }

    #[test]
    fn forged_or_broken_store_cursors_are_refused() {
        let long = "a".repeat(CURSOR_MAX + 1);
        let forged = [
            String::new(),
            "not base64!".into(),
            long,
            // Padding, and standard base64's alphabet: not the spelling this code writes.
            format!("{}=", b64("s1:1764666442:0:store-7016ff")),
            b64("s1:1764666442:0:store-7016ff") + "A",
            b64("s2:1764666442:0:store-7016ff"),
            b64("a1:42"),
            b64("s1:1764666442:0"),
            b64("s1:+1764666442:0:store-7016ff"),
            b64("s1:01764666442:0:store-7016ff"),
            b64("s1:1764666442:1000000000:store-7016ff"),
            b64("s1:99999999999999999:0:store-7016ff"),
            b64("s1:x:0:store-7016ff"),
            b64("s1:1764666442:0:"),
            b64("s1:1764666442:0:Store-7016FF"),
            b64("s1:1764666442:0:store 7016ff"),
            b64("s1:1764666442:0:store-7016ff:extra"),
            b64(&format!("s1:1764666442:0:{}", "a".repeat(254))),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe, 0x00]),
        ];
        for raw in forged {
            assert_eq!(
                StoreCursor::parse(&raw),
                Err(PagingError::BadCursor),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn audit_cursors_round_trip_and_refuse_anything_else() {
        let cursor = AuditCursor { before_id: 1234 };
        assert_eq!(AuditCursor::parse(&cursor.encode()), Ok(cursor));
        assert_eq!(AuditCursor::parse("YTE6MTIzNA"), Ok(cursor));
        for raw in [
            b64("a1:0"),
            b64("a1:-5"),
            b64("a1:0012"),
            b64("a1:12 "),
            b64("a1:"),
            b64("a2:12"),
            b64("s1:1764666442:0:store-7016ff"),
            "12".into(),
        ] {
            assert_eq!(
                AuditCursor::parse(&raw),
                Err(PagingError::BadCursor),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn limits_hold_their_range() {
        assert_eq!(Limit::parse(1, 500).map(Limit::get), Ok(1));
        assert_eq!(Limit::parse(500, 500).map(Limit::get), Ok(500));
        for bad in [0, 501, u32::MAX] {
            assert_eq!(
                Limit::parse(bad, 500),
                Err(PagingError::LimitOutOfRange { max: 500 })
            );
        }
    }
}
