//! The member's consent as an HRex Consent resource (HRex 1.2 `hrex-consent`, PDex 2.2
//! payer-to-payer purpose): what they agreed to is expressed solely in `policy` — `#regular`
//! (sensitive data excluded) or `#sensitive` (included); the words they read are kept in a
//! contained DocumentReference as the consent's source, for audit.

use base64::Engine as _;
use serde_json::{Value, json};
use time::{Date, OffsetDateTime};

pub const POLICY_REGULAR: &str = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular";
pub const POLICY_SENSITIVE: &str =
    "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive";
pub const PROFILE: &str = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-consent";

/// How long the permission lasts: until this many days after the new coverage starts.
pub const DAYS_AFTER_COVERAGE_START: i64 = 90;

/// A plan named in the consent.
#[derive(Debug, Clone)]
pub struct PlanRef {
    /// The plan's FHIR base (its identifier system when it has no NAIC code here).
    pub base: String,
    pub id: String,
    pub name: String,
    /// Its identifiers (`system|value`, the NAIC company code where known): the first names it
    /// in the Consent; none, the FHIR base does.
    pub identifiers: Vec<String>,
}

/// Everything the Consent says.
#[derive(Debug, Clone)]
pub struct ConsentFacts {
    pub id: String,
    /// `Patient/…` in this plan's store.
    pub patient: String,
    pub member_name: String,
    pub old_plan: PlanRef,
    pub new_plan: PlanRef,
    pub include_sensitive: bool,
    pub start: Date,
    pub end: Date,
    pub given_at: OffsetDateTime,
    /// The words the member read and agreed to.
    pub statement: String,
}

/// When a member may give the permission, and until when it lasts (PDex's proposed period: to
/// 90 days after the new plan's coverage starts; the Consent's end may not be later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The permission, given today, lasts until `until` (inclusive).
    Open { until: Date },
    /// It could be given until `ended`, which has passed.
    Closed { ended: Date },
}

impl Window {
    /// For a member whose coverage starts (or started) on `coverage_start`. With no start on
    /// record, the 90 days count from today.
    pub fn for_coverage(coverage_start: Option<Date>, today: Date) -> Window {
        let until = coverage_start.unwrap_or(today).saturating_add(time::Duration::days(DAYS_AFTER_COVERAGE_START));
        if until < today { Window::Closed { ended: until } } else { Window::Open { until } }
    }

    /// For a member the previous plan still covers (concurrent coverage): the permission lasts
    /// to the end of this plan's current plan year — years run from the coverage start's
    /// anniversary (1 January with no start on record) — and never less than the 90 days.
    pub fn for_concurrent(coverage_start: Option<Date>, today: Date) -> Window {
        let anchor = coverage_start.unwrap_or_else(|| Date::from_ordinal_date(today.year(), 1).unwrap_or(today));
        let anniversary = |year: i32| {
            Date::from_calendar_date(year, anchor.month(), anchor.day())
                .or_else(|_| Date::from_calendar_date(year, anchor.month(), anchor.day() - 1))
                .unwrap_or(today)
        };
        let mut next = anniversary(today.year());
        if next <= today {
            next = anniversary(today.year() + 1);
        }
        let year_end = next.previous_day().unwrap_or(today);
        match Window::for_coverage(coverage_start, today) {
            Window::Open { until } if until > year_end => Window::Open { until },
            _ => Window::Open { until: year_end },
        }
    }
}

/// The HRex Consent resource.
pub fn hrex_consent(facts: &ConsentFacts) -> Value {
    let policy = if facts.include_sensitive { POLICY_SENSITIVE } else { POLICY_REGULAR };
    let given = facts.given_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    let statement = base64::engine::general_purpose::STANDARD.encode(facts.statement.as_bytes());
    let organization = |plan: &PlanRef| {
        let identifier = match plan.identifiers.first().and_then(|i| i.split_once('|')) {
            Some((system, value)) => json!({"system": system, "value": value}),
            None => json!({"system": format!("{}/payer-id", plan.base.trim_end_matches('/')), "value": plan.id}),
        };
        json!({"identifier": identifier, "display": plan.name})
    };
    json!({
        "resourceType": "Consent",
        "id": facts.id,
        "meta": {"profile": [PROFILE]},
        "contained": [{
            "resourceType": "DocumentReference",
            "id": "statement",
            "status": "current",
            "subject": {"reference": facts.patient},
            "date": given,
            "description": "What the member read and agreed to",
            "content": [{"attachment": {
                "contentType": "text/plain; charset=utf-8",
                "language": "en",
                "data": statement,
                "title": "Consent to bring records from the previous health plan",
                "creation": given
            }}]
        }],
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL"}]},
            {"coding": [{
                "system": "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/pdex-consent-api-purpose",
                "code": "payer-to-payer"
            }]}
        ],
        "patient": {"reference": facts.patient, "display": facts.member_name},
        "dateTime": given,
        "performer": [{"reference": facts.patient, "display": facts.member_name}],
        "sourceReference": {"reference": "#statement"},
        "policy": [{"uri": policy}],
        "provision": {
            "type": "permit",
            "period": {"start": facts.start.to_string(), "end": facts.end.to_string()},
            "actor": [
                {
                    "role": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "code": "performer"
                    }]},
                    "reference": organization(&facts.old_plan)
                },
                {
                    "role": {"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP"
                    }]},
                    "reference": organization(&facts.new_plan)
                }
            ],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}]}]
        }
    })
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn facts(include_sensitive: bool) -> ConsentFacts {
        ConsentFacts {
            id: "c1".into(),
            patient: "Patient/member-7".into(),
            member_name: "Maria Garcia".into(),
            old_plan: PlanRef {
                base: "https://old.example/fhir".into(),
                id: "riverbend".into(),
                name: "Riverbend".into(),
                identifiers: vec![],
            },
            new_plan: PlanRef {
                base: "https://new.example".into(),
                id: "this-plan".into(),
                name: "Cedar Valley".into(),
                identifiers: vec!["urn:oid:2.16.840.1.113883.6.300|99999".into()],
            },
            include_sensitive,
            start: date!(2026 - 11 - 25),
            end: date!(2027 - 03 - 01),
            given_at: datetime!(2026-11-25 10:00 UTC),
            statement: "I agree.".into(),
        }
    }

    #[test]
    fn policy_carries_the_sensitive_choice() {
        assert_eq!(hrex_consent(&facts(false))["policy"][0]["uri"], POLICY_REGULAR);
        assert_eq!(hrex_consent(&facts(true))["policy"][0]["uri"], POLICY_SENSITIVE);
    }

    #[test]
    fn conforms_to_the_hrex_profile_shape() {
        let consent = hrex_consent(&facts(false));
        assert_eq!(consent["status"], "active");
        assert_eq!(consent["scope"]["coding"][0]["code"], "patient-privacy");
        let categories: Vec<&str> =
            consent["category"].as_array().unwrap().iter().filter_map(|c| c["coding"][0]["code"].as_str()).collect();
        assert_eq!(categories, ["IDSCL", "payer-to-payer"]);
        let provision = &consent["provision"];
        assert_eq!(provision["type"], "permit");
        assert_eq!(provision["period"]["start"], "2026-11-25");
        assert_eq!(provision["period"]["end"], "2027-03-01");
        assert_eq!(provision["actor"][0]["role"]["coding"][0]["code"], "performer");
        assert_eq!(provision["actor"][0]["reference"]["display"], "Riverbend");
        assert_eq!(provision["actor"][1]["role"]["coding"][0]["code"], "IRCP");
        assert_eq!(provision["actor"][1]["reference"]["display"], "Cedar Valley");
        // A plan is named by its NAIC code where it is known, else by its FHIR base.
        assert_eq!(
            provision["actor"][1]["reference"]["identifier"],
            serde_json::json!({"system": "urn:oid:2.16.840.1.113883.6.300", "value": "99999"})
        );
        assert_eq!(provision["actor"][0]["reference"]["identifier"]["system"], "https://old.example/fhir/payer-id");
        // Prohibited by the profile: rules live only in `policy`.
        for prohibited in ["securityLabel", "purpose", "class", "code", "dataPeriod", "data", "provision"] {
            assert!(provision.get(prohibited).is_none(), "{prohibited}");
        }
        // The source of truth resolves to the contained statement.
        assert_eq!(consent["sourceReference"]["reference"], "#statement");
        assert_eq!(consent["contained"][0]["id"], "statement");
        let data = consent["contained"][0]["content"][0]["attachment"]["data"].as_str().unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(data).unwrap(), b"I agree.");
    }

    #[test]
    fn permission_lasts_until_90_days_after_coverage_starts() {
        let today = date!(2026 - 11 - 25);
        // Early enrollment: coverage starts next month.
        assert_eq!(
            Window::for_coverage(Some(date!(2026 - 12 - 01)), today),
            Window::Open { until: date!(2027 - 03 - 01) }
        );
        assert_eq!(
            Window::for_coverage(Some(date!(2026 - 11 - 01)), today),
            Window::Open { until: date!(2027 - 01 - 30) }
        );
        // The last day is still open; the day after, closed.
        assert_eq!(Window::for_coverage(Some(date!(2026 - 08 - 27)), today), Window::Open { until: today });
        assert_eq!(
            Window::for_coverage(Some(date!(2026 - 08 - 26)), today),
            Window::Closed { ended: date!(2026 - 11 - 24) }
        );
        assert_eq!(
            Window::for_coverage(Some(date!(2026 - 01 - 01)), today),
            Window::Closed { ended: date!(2026 - 04 - 01) }
        );
        // No coverage start on record: 90 days from today.
        assert_eq!(Window::for_coverage(None, today), Window::Open { until: date!(2027 - 02 - 23) });
    }

    #[test]
    fn concurrent_coverage_lasts_to_the_plan_year_end() {
        let today = date!(2026 - 11 - 25);
        // Plan years from 1 July: the current one ends 30 June.
        assert_eq!(
            Window::for_concurrent(Some(date!(2025 - 07 - 01)), today),
            Window::Open { until: date!(2027 - 06 - 30) }
        );
        // Calendar plan years with no start on record.
        assert_eq!(Window::for_concurrent(None, date!(2026 - 03 - 10)), Window::Open { until: date!(2026 - 12 - 31) });
        // A year ending sooner than the 90 days keeps the 90 days.
        assert_eq!(
            Window::for_concurrent(Some(date!(2026 - 11 - 01)), date!(2027 - 10 - 20)),
            Window::Open { until: date!(2027 - 10 - 31) }
        );
        assert_eq!(
            Window::for_concurrent(Some(date!(2026 - 12 - 01)), today),
            Window::Open { until: date!(2027 - 03 - 01) }
        );
    }
}
