//! FHIR `date`, `dateTime` and `instant` values as time ranges (milliseconds since the Unix
//! epoch, UTC). A partial date covers its whole period: `2024` is all of 2024.

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime};

/// An inclusive range of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
}

impl Range {
    pub fn point(at: i64) -> Self {
        Self { start: at, end: at }
    }

    /// The smallest range covering both.
    pub fn union(self, other: Range) -> Range {
        Range { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

const DAY_MS: i64 = 86_400_000;

/// Parses a FHIR date, dateTime or instant. Dates without a time are taken as UTC days.
pub fn parse(text: &str) -> Option<Range> {
    let text = text.trim();
    match text.len() {
        4 => {
            let year: i32 = text.parse().ok()?;
            let start = day_start(Date::from_calendar_date(year, Month::January, 1).ok()?);
            let end = day_start(Date::from_calendar_date(year + 1, Month::January, 1).ok()?) - 1;
            Some(Range { start, end })
        }
        7 => {
            let (year, month) = text.split_once('-')?;
            let year: i32 = year.parse().ok()?;
            let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
            let first = Date::from_calendar_date(year, month, 1).ok()?;
            let next = if month == Month::December {
                Date::from_calendar_date(year + 1, Month::January, 1).ok()?
            } else {
                Date::from_calendar_date(year, month.next(), 1).ok()?
            };
            Some(Range { start: day_start(first), end: day_start(next) - 1 })
        }
        10 => {
            let date = parse_date(text)?;
            let start = day_start(date);
            Some(Range { start, end: start + DAY_MS - 1 })
        }
        _ => {
            let at = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
                // FHIR allows dateTime without seconds? No — but senders do; be forgiving.
                OffsetDateTime::parse(&text.replacen('Z', ":00Z", 1), &Rfc3339).ok()
            })?;
            Some(Range::point((at.unix_timestamp_nanos() / 1_000_000) as i64))
        }
    }
}

/// A `Period` object (`{start, end}`): missing ends are open (the other end is used).
pub fn parse_period(period: &serde_json::Value) -> Option<Range> {
    let start = period.get("start").and_then(serde_json::Value::as_str).and_then(parse);
    let end = period.get("end").and_then(serde_json::Value::as_str).and_then(parse);
    match (start, end) {
        (Some(s), Some(e)) => Some(Range { start: s.start, end: e.end.max(s.start) }),
        (Some(s), None) => Some(s),
        (None, Some(e)) => Some(e),
        (None, None) => None,
    }
}

/// The range of a `date`, `dateTime` string or a `Period` object.
pub fn of_value(value: &serde_json::Value) -> Option<Range> {
    match value {
        serde_json::Value::String(text) => parse(text),
        serde_json::Value::Object(_) => parse_period(value),
        _ => None,
    }
}

fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month = Month::try_from(parts.next()?.parse::<u8>().ok()?).ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

fn day_start(date: Date) -> i64 {
    (date.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A FHIR `date` (YYYY-MM-DD) for `millis`.
pub fn format_date(millis: i64) -> String {
    let at =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-{:02}", at.year(), u8::from(at.month()), at.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        (OffsetDateTime::parse(text, &Rfc3339).unwrap().unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn partial_dates_cover_their_period() {
        assert_eq!(
            parse("2024").unwrap(),
            Range { start: ms("2024-01-01T00:00:00Z"), end: ms("2025-01-01T00:00:00Z") - 1 }
        );
        assert_eq!(
            parse("2024-02").unwrap(),
            Range { start: ms("2024-02-01T00:00:00Z"), end: ms("2024-03-01T00:00:00Z") - 1 }
        );
        assert_eq!(parse("2024-12").unwrap().end, ms("2025-01-01T00:00:00Z") - 1);
        assert_eq!(
            parse("2024-02-29").unwrap(),
            Range { start: ms("2024-02-29T00:00:00Z"), end: ms("2024-03-01T00:00:00Z") - 1 }
        );
    }

    #[test]
    fn instants_are_points_in_utc() {
        assert_eq!(parse("2024-02-29T10:00:00-05:00").unwrap(), Range::point(ms("2024-02-29T15:00:00Z")));
        assert_eq!(parse("2024-02-29T10:00:00.123Z").unwrap(), Range::point(ms("2024-02-29T10:00:00.123Z")));
    }

    #[test]
    fn garbage_is_none() {
        for bad in ["", "yesterday", "2024-13", "2023-02-29", "20240101", "2024-02-30"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn periods() {
        let both = serde_json::json!({"start": "2020-01-01", "end": "2020-01-31"});
        assert_eq!(
            parse_period(&both).unwrap(),
            Range { start: ms("2020-01-01T00:00:00Z"), end: ms("2020-02-01T00:00:00Z") - 1 }
        );
        let open = serde_json::json!({"start": "2020-01-01"});
        assert_eq!(parse_period(&open).unwrap().start, ms("2020-01-01T00:00:00Z"));
        assert_eq!(format_date(ms("2020-01-31T23:00:00Z")), "2020-01-31");
    }
}
