//! Figures for the transfers dashboard.

use baton_store::TransferTimes;
use baton_vocab::TransferState;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};

/// Transfers of one day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCounts {
    pub day: Date,
    pub started: u32,
    pub completed: u32,
    pub failed: u32,
}

/// One entry per day for the `days` days ending `today`, oldest first: transfers started that
/// day, and finished that day as completed or as failed (failed or needing the member again).
pub fn per_day(times: &[TransferTimes], today: Date, days: u16) -> Vec<DayCounts> {
    let days = days.max(1);
    let first = today - Duration::days(i64::from(days) - 1);
    let mut counts: Vec<DayCounts> = (0..days)
        .map(|i| DayCounts { day: first + Duration::days(i64::from(i)), started: 0, completed: 0, failed: 0 })
        .collect();
    let slot = |millis: i64| -> Option<usize> {
        let day = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?.date();
        let offset = (day - first).whole_days();
        (0..i64::from(days)).contains(&offset).then_some(offset as usize)
    };
    for t in times {
        if let Some(i) = slot(t.created_at) {
            counts[i].started += 1;
        }
        if let Some(i) = t.finished_at.and_then(slot) {
            match t.state {
                TransferState::Completed => counts[i].completed += 1,
                TransferState::Failed | TransferState::NeedsReauthorization => counts[i].failed += 1,
                TransferState::Queued | TransferState::Running | TransferState::Cancelled => {}
            }
        }
    }
    counts
}

/// The CMS expectation: a member asks for their previous plan's data within a week of
/// coverage start. Members whose coverage started on or before this day and who have not
/// opted in are late.
pub fn opt_in_deadline_passed_for(today: Date) -> Date {
    today - Duration::days(7)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn ms(day: Date, hour: u8) -> i64 {
        (day.with_hms(hour, 0, 0).unwrap().assume_utc().unix_timestamp_nanos() / 1_000_000) as i64
    }

    #[test]
    fn transfers_are_counted_on_the_day_they_start_and_end() {
        let today = date!(2026 - 11 - 25);
        let yesterday = date!(2026 - 11 - 24);
        let times = vec![
            TransferTimes {
                created_at: ms(yesterday, 23),
                finished_at: Some(ms(today, 1)),
                state: baton_vocab::TransferState::Completed,
            },
            TransferTimes {
                created_at: ms(today, 9),
                finished_at: Some(ms(today, 10)),
                state: baton_vocab::TransferState::Failed,
            },
            TransferTimes { created_at: ms(today, 11), finished_at: None, state: baton_vocab::TransferState::Running },
            TransferTimes {
                created_at: ms(date!(2026 - 10 - 01), 1),
                finished_at: None,
                state: baton_vocab::TransferState::Queued,
            },
        ];
        let days = per_day(&times, today, 7);
        assert_eq!(days.len(), 7);
        assert_eq!(days[0].day, date!(2026 - 11 - 19));
        assert_eq!(days[5], DayCounts { day: yesterday, started: 1, completed: 0, failed: 0 });
        assert_eq!(days[6], DayCounts { day: today, started: 2, completed: 1, failed: 1 });
        assert_eq!(days.iter().map(|d| d.started).sum::<u32>(), 3, "the October one is outside the window");
    }
}
