//! A new member's previous coverage on the roster, and whether they opted in at enrollment to
//! this plan asking that plan for their records (CMS-0057-F Payer-to-Payer): optional columns,
//! all or none of a coverage.
//!
//! | column | |
//! |---|---|
//! | `previous_payer` | the previous plan's id in this plan's payer directory |
//! | `previous_member_id` | the member or subscriber id on the old card |
//! | `previous_coverage_start`, `previous_coverage_end` | dates, optional |
//! | `previous_coverage_concurrent` | `yes` when that plan still covers them |
//! | `p2p_opt_in` | `yes` (opted in), `no` (declined) or empty (not asked) |
//! | `p2p_opt_in_date` | when they opted in (default: the coverage start) |
//! | `p2p_sensitive` | `yes` to include sensitive information (default `no`) |

use serde::{Deserialize, Serialize};
use time::Date;

/// Column names accepted for each optional field (compared lower case, spaces and `-` as `_`).
pub(crate) const COLUMNS: [(&str, &[&str]); 8] = [
    ("previous_payer", &["previous_payer", "prior_payer", "previous_plan"]),
    ("previous_member_id", &["previous_member_id", "prior_member_id", "previous_subscriber_id"]),
    ("previous_coverage_start", &["previous_coverage_start", "prior_coverage_start"]),
    ("previous_coverage_end", &["previous_coverage_end", "prior_coverage_end"]),
    ("previous_coverage_concurrent", &["previous_coverage_concurrent", "concurrent_coverage"]),
    ("p2p_opt_in", &["p2p_opt_in", "payer_to_payer_opt_in", "opt_in"]),
    ("p2p_opt_in_date", &["p2p_opt_in_date", "opt_in_date"]),
    ("p2p_sensitive", &["p2p_sensitive", "sensitive"]),
];

/// A previous coverage, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousEntry {
    pub payer: String,
    pub member_id: String,
    pub start: Option<Date>,
    pub end: Option<Date>,
    pub concurrent: bool,
    /// `None`: not asked at enrollment.
    pub opt_in: Option<OptInEntry>,
}

/// What the member said at enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptInEntry {
    pub agreed: bool,
    pub on: Date,
    pub include_sensitive: bool,
}

/// The optional fields as written.
#[derive(Debug, Default)]
pub(crate) struct PreviousFields {
    pub payer: String,
    pub member_id: String,
    pub start: String,
    pub end: String,
    pub concurrent: String,
    pub opt_in: String,
    pub opt_in_date: String,
    pub sensitive: String,
}

fn yes_no(text: &str, what: &str, errors: &mut Vec<String>) -> Option<bool> {
    match text.trim().to_lowercase().as_str() {
        "" => None,
        "y" | "yes" | "true" | "1" | "si" | "sí" => Some(true),
        "n" | "no" | "false" | "0" => Some(false),
        other => {
            errors.push(format!("{what} {other:?} is not yes or no"));
            None
        }
    }
}

fn date(text: &str, what: &str, errors: &mut Vec<String>) -> Option<Date> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let parsed = baton_vocab::day::parse(text);
    if parsed.is_none() {
        errors.push(format!("{what} {text:?} is not a date like 2025-01-01"));
    }
    parsed
}

impl PreviousFields {
    /// The coverage, or `None` when the row names none; problems go to `errors`.
    pub(crate) fn check(self, coverage_start: Option<Date>, errors: &mut Vec<String>) -> Option<PreviousEntry> {
        let payer = self.payer.trim().to_owned();
        let member_id = self.member_id.trim().to_owned();
        let anything = [&self.payer, &self.member_id, &self.start, &self.end, &self.concurrent, &self.opt_in]
            .iter()
            .any(|f| !f.trim().is_empty());
        if !anything {
            return None;
        }
        if payer.is_empty() {
            errors.push("previous payer is missing (the previous coverage's other columns are filled)".into());
        }
        if member_id.is_empty() {
            errors.push("previous member id is missing".into());
        } else if member_id.chars().count() > 100 || member_id.chars().any(char::is_control) {
            errors.push("previous member id is not an id".into());
        }
        let start = date(&self.start, "previous coverage start", errors);
        let end = date(&self.end, "previous coverage end", errors);
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            errors.push("the previous coverage ends before it starts".into());
        }
        let concurrent = yes_no(&self.concurrent, "previous coverage concurrent", errors).unwrap_or(false);
        let agreed = yes_no(&self.opt_in, "p2p opt-in", errors);
        let on = date(&self.opt_in_date, "p2p opt-in date", errors);
        let include_sensitive = yes_no(&self.sensitive, "p2p sensitive", errors).unwrap_or(false);
        let today = time::OffsetDateTime::now_utc().date();
        if on.is_some_and(|on| on > today) {
            errors.push("the p2p opt-in date is in the future".into());
        }
        let opt_in = match (agreed, on.or(coverage_start)) {
            (Some(agreed), Some(on)) => Some(OptInEntry { agreed, on: on.min(today), include_sensitive }),
            (Some(_), None) => {
                errors.push("p2p opt-in date is missing".into());
                None
            }
            (None, _) => None,
        };
        Some(PreviousEntry { payer, member_id, start, end, concurrent, opt_in })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(payer: &str, member_id: &str, opt_in: &str) -> PreviousFields {
        PreviousFields { payer: payer.into(), member_id: member_id.into(), opt_in: opt_in.into(), ..Default::default() }
    }

    #[test]
    fn an_opt_in_at_enrollment_dates_from_the_coverage_start_unless_told() {
        let start = baton_vocab::day::parse("2026-01-01");
        let mut errors = vec![];
        let entry = fields("riverbend", "RB-1", "yes").check(start, &mut errors).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let opt_in = entry.opt_in.unwrap();
        assert!(opt_in.agreed && !opt_in.include_sensitive);
        assert_eq!(Some(opt_in.on), start);
    }

    #[test]
    fn half_a_coverage_is_an_error_and_no_coverage_is_none() {
        let mut errors = vec![];
        assert!(fields("", "", "").check(None, &mut errors).is_none() && errors.is_empty());
        fields("", "RB-1", "maybe").check(None, &mut errors);
        assert_eq!(errors.len(), 2, "{errors:?}");
    }
}
