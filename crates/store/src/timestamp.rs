use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time, stored as milliseconds since the Unix epoch (UTC) on both backends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Self((at.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// `self` moved by `delta` (negative to go back).
    pub fn plus(self, delta: time::Duration) -> Self {
        Self(self.0.saturating_add(delta.whole_milliseconds() as i64))
    }

    /// A FHIR `instant` (RFC 3339, UTC, millisecond precision).
    pub fn to_fhir_instant(self) -> String {
        let at = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        )
    }

    /// Parses an RFC 3339 instant (any offset, any fraction precision).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339).ok().map(Self::from_datetime)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_fhir_instant())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fhir_instant_round_trips() {
        let t = Timestamp::from_millis(1_732_480_000_123);
        assert_eq!(t.to_fhir_instant(), "2024-11-24T20:26:40.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_fhir_instant()), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("2024-11-24T15:26:40.123-05:00"), Some(t), "offsets are normalised to UTC");
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }
}
