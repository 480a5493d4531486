//! Calendar days as Baton writes them everywhere: `YYYY-MM-DD` (birth dates, coverage starts,
//! form fields, FHIR `date`s). The one parser and formatter.

use time::Date;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

const DAY: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// `YYYY-MM-DD` (surrounding spaces ignored), or `None`.
pub fn parse(text: &str) -> Option<Date> {
    Date::parse(text.trim(), DAY).ok()
}

/// `YYYY-MM-DD`.
pub fn format(date: Date) -> String {
    date.format(DAY).unwrap_or_else(|_| format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()))
}

/// The day `millis` (since the epoch) falls on, in UTC.
pub fn of_millis(millis: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// Milliseconds since the epoch at the start of `date` (UTC).
pub fn start_millis(date: Date) -> i64 {
    (date.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-11-25 14:03 UTC` for `millis` since the epoch (staff pages show UTC times).
pub fn utc(millis: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{} {:02}:{:02} UTC", format(at.date()), at.hour(), at.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form_each_way() {
        let date = parse(" 1984-03-12 ").unwrap();
        assert_eq!(format(date), "1984-03-12");
        assert_eq!(of_millis(start_millis(date)), date);
        assert_eq!(of_millis(start_millis(date) + 86_399_999), date);
        assert_eq!(utc(start_millis(date) + 14 * 3_600_000 + 3 * 60_000 + 59_000), "1984-03-12 14:03 UTC");
        for bad in ["1984-3-12", "12/03/1984", "1984-02-30", "", "1984-03-12T00:00:00Z"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
