//! How a point in time is stored, the same way on both backends: sqlx's Any driver (`storage/mod.rs`)
//! carries no date type, so a time is ISO 8601 UTC text. The format is the one sqlx's SQLite driver
//! wrote before PostgreSQL came (`to_rfc3339_opts(AutoSi, false)`, e.g. `2026-12-02T12:00:00.5+00:00`),
//! so files written by older versions read back and compare the same. As text it sorts as time does:
//! the date and time are fixed-width, and where the fractions differ in length a digit sorts after `+`.
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{Any, AnyTypeInfo, AnyValueRef};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Decode, Encode, Type};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(pub DateTime<Utc>);

impl Stamp {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    fn text(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }
}

impl From<DateTime<Utc>> for Stamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at)
    }
}

impl Type<Any> for Stamp {
    fn type_info() -> AnyTypeInfo {
        <String as Type<Any>>::type_info()
    }

    fn compatible(ty: &AnyTypeInfo) -> bool {
        <String as Type<Any>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Any> for Stamp {
    fn encode_by_ref(
        &self,
        buf: &mut <Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Any>>::encode(self.text(), buf)
    }
}

impl<'r> Decode<'r, Any> for Stamp {
    fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Any>>::decode(value)?;
        Ok(Self(
            DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sorts_as_time_does() {
        let base = DateTime::parse_from_rfc3339("2026-12-02T12:00:00+00:00")
            .unwrap()
            .with_timezone(&Utc);
        let times: Vec<Stamp> = [0, 1, 5, 120, 500_000, 1_000_000, 999_999_999, 1_000_000_000]
            .into_iter()
            .map(|ns| Stamp(base + chrono::Duration::nanoseconds(ns)))
            .collect();
        let mut texts: Vec<String> = times.iter().map(|t| t.text()).collect();
        let in_order = texts.clone();
        texts.sort();
        assert_eq!(texts, in_order, "text order is time order");
        for (stamp, text) in times.iter().zip(&in_order) {
            let back = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(back, stamp.0);
        }
    }
}
