//! Search parameters: parsed strictly, so that a client never gets unfiltered results for a
//! filter the server ignored (unknown parameters are a 400).

use baton_fhir::datetime;
use baton_fhir::index::date_parameters;
use baton_fhir::reference::Reference;
use baton_store::{IndexedIdentifier, Timestamp};

use super::FhirError;

pub const DEFAULT_COUNT: u32 = 50;
pub const MAX_COUNT: u32 = 1000;

/// Inclusive bounds on a date, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Bounds {
    /// Adds one `[prefix]value` condition (`ge2020-01-01`, `lt2021`, `2020-05`…).
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), FhirError> {
        let (prefix, value) = match text.get(..2) {
            Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap")) => (p, &text[2..]),
            _ => ("eq", text),
        };
        let range = datetime::parse(value)
            .ok_or_else(|| FhirError::bad_parameter(format!("{name}: {value:?} is not a FHIR date or dateTime")))?;
        let (from, to) = match prefix {
            "eq" => (Some(range.start), Some(range.end)),
            "ge" => (Some(range.start), None),
            "gt" => (Some(range.end + 1), None),
            "le" => (None, Some(range.end)),
            "lt" => (None, Some(range.start - 1)),
            other => return Err(FhirError::bad_parameter(format!("{name}: the prefix {other} is not supported"))),
        };
        if let Some(from) = from {
            self.from = Some(self.from.map_or(from, |f| f.max(from)));
        }
        if let Some(to) = to {
            self.to = Some(self.to.map_or(to, |t| t.min(to)));
        }
        Ok(())
    }

    pub fn from(&self) -> Option<Timestamp> {
        self.from.map(Timestamp::from_millis)
    }

    pub fn to(&self) -> Option<Timestamp> {
        self.to.map(Timestamp::from_millis)
    }

    /// The exclusive upper bound (`lastUpdated < before`).
    pub fn before(&self) -> Option<Timestamp> {
        self.to.map(|t| Timestamp::from_millis(t + 1))
    }

    pub fn is_empty_range(&self) -> bool {
        matches!((self.from, self.to), (Some(f), Some(t)) if f > t)
    }
}

/// A page position: after this `seq`, within this snapshot; with the search's total, counted
/// once on the first page (counting again on every page would make paging quadratic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub after: i64,
    pub snapshot: i64,
    pub total: u64,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Self, FhirError> {
        let bad = || FhirError::bad_parameter("_cursor is not valid (use the next link as given)");
        let mut parts = text.split('.');
        let mut next = || parts.next().ok_or_else(bad);
        let cursor = Cursor {
            after: next()?.parse().map_err(|_| bad())?,
            snapshot: next()?.parse().map_err(|_| bad())?,
            total: next()?.parse().map_err(|_| bad())?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(cursor)
    }

    pub fn encode(self) -> String {
        format!("{}.{}.{}", self.after, self.snapshot, self.total)
    }
}

/// A parsed search.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The patient named (`patient`, `subject`, `beneficiary`, or `_id` on Patient).
    pub patient: Option<String>,
    pub ids: Vec<String>,
    pub identifier: Option<IndexedIdentifier>,
    pub last_updated: Bounds,
    pub dates: Bounds,
    pub count: u32,
    /// `_include` search parameters of this type (e.g. `coverage`, `patient`).
    pub includes: Vec<String>,
    pub revinclude_provenance: bool,
    /// `Provenance?target=Type/id,…`: the Provenance of these records.
    pub targets: Vec<(String, String)>,
    pub cursor: Option<Cursor>,
}

/// The most records one `target=` may name.
pub const MAX_TARGETS: usize = 500;

/// The `_include` parameters each type supports.
pub fn include_parameters(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "ExplanationOfBenefit" => &["patient", "coverage", "provider", "insurer", "care-team"],
        "Encounter" => &["patient", "practitioner", "service-provider"],
        "MedicationRequest" => &["patient", "requester", "medication"],
        "MedicationDispense" => &["patient", "medication"],
        "Coverage" => &["payor"],
        "Provenance" => &["target", "agent"],
        _ => &[],
    }
}

/// The parameter naming the patient, per type.
fn patient_parameters(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Patient" => &[],
        "Coverage" => &["patient", "beneficiary"],
        t if baton_fhir::exchange::is_compartment_type(t) => &["patient", "subject"],
        _ => &[],
    }
}

/// Parses the query of `GET [base]/{resource_type}?…`.
pub fn parse(resource_type: &str, pairs: &[(String, String)]) -> Result<Search, FhirError> {
    let mut search = Search { count: DEFAULT_COUNT, ..Default::default() };
    let dates = date_parameters(resource_type);
    for (name, value) in pairs {
        // Modifiers are not supported: `code:text=…` is refused rather than ignored.
        let name = name.as_str();
        match name {
            "_format" => format(value)?,
            "_count" => search.count = count(value)?,
            "_cursor" => search.cursor = Some(Cursor::parse(value)?),
            "_id" => {
                let ids: Vec<String> =
                    value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
                if ids.iter().any(|id| !baton_fhir::is_valid_id(id)) {
                    return Err(FhirError::bad_parameter("_id: not a valid id"));
                }
                if resource_type == "Patient" {
                    for id in &ids {
                        set_patient(&mut search, id)?;
                    }
                }
                search.ids.extend(ids);
            }
            "identifier" => {
                let (system, value) = match value.split_once('|') {
                    Some((system, value)) => (system.to_owned(), value.to_owned()),
                    None => (String::new(), value.clone()),
                };
                if value.is_empty() {
                    return Err(FhirError::bad_parameter("identifier: a value is required"));
                }
                search.identifier = Some(IndexedIdentifier { system, value });
            }
            "_lastUpdated" => search.last_updated.add(name, value)?,
            "_include" => {
                let mut parts = value.split(':');
                let (source, param) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if source != resource_type || !include_parameters(resource_type).contains(&param) {
                    return Err(FhirError::bad_parameter(format!(
                        "_include={value} is not supported; supported: {}",
                        include_parameters(resource_type)
                            .iter()
                            .map(|p| format!("{resource_type}:{p}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                search.includes.push(param.to_owned());
            }
            "_revinclude" => {
                if value != "Provenance:target" {
                    return Err(FhirError::bad_parameter("_revinclude: only Provenance:target is supported"));
                }
                search.revinclude_provenance = true;
            }
            "target" if resource_type == "Provenance" => {
                for reference in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    let Some((t, id)) = Reference::parse(reference).type_and_id() else {
                        return Err(FhirError::bad_parameter(format!("target: {reference} is not a Type/id reference")));
                    };
                    search.targets.push((t.to_owned(), id.to_owned()));
                }
                if search.targets.is_empty() {
                    return Err(FhirError::bad_parameter("target: a reference is required"));
                }
                if search.targets.len() > MAX_TARGETS {
                    return Err(FhirError::bad_parameter(format!("target: at most {MAX_TARGETS} references")));
                }
            }
            n if patient_parameters(resource_type).contains(&n) => {
                let id = match Reference::parse(value).type_and_id() {
                    Some(("Patient", id)) => id.to_owned(),
                    Some(_) => return Err(FhirError::bad_parameter(format!("{n}: must refer to a Patient"))),
                    None if baton_fhir::is_valid_id(value) => value.clone(),
                    None => return Err(FhirError::bad_parameter(format!("{n}: not a Patient reference"))),
                };
                set_patient(&mut search, &id)?;
            }
            n if dates.contains(&n) => search.dates.add(n, value)?,
            n => {
                return Err(FhirError::bad_parameter(format!(
                    "the search parameter {n} is not supported for {resource_type}"
                )));
            }
        }
    }
    Ok(search)
}

fn set_patient(search: &mut Search, id: &str) -> Result<(), FhirError> {
    match &search.patient {
        Some(existing) if existing != id => Err(FhirError::bad_parameter("conflicting patient parameters")),
        _ => {
            search.patient = Some(id.to_owned());
            Ok(())
        }
    }
}

pub fn count(value: &str) -> Result<u32, FhirError> {
    let count: u32 = value.parse().map_err(|_| FhirError::bad_parameter("_count must be a whole number"))?;
    Ok(count.min(MAX_COUNT))
}

pub fn format(value: &str) -> Result<(), FhirError> {
    match value {
        "json" | "application/json" | "application/fhir+json" => Ok(()),
        other => Err(FhirError::bad_parameter(format!("_format={other}: only JSON is supported"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn parses_a_typical_pdex_search() {
        let search = parse(
            "ExplanationOfBenefit",
            &q(&[
                ("patient", "Patient/p1"),
                ("service-date", "ge2021-01-01"),
                ("_revinclude", "Provenance:target"),
                ("_include", "ExplanationOfBenefit:coverage"),
                ("_count", "100"),
            ]),
        )
        .unwrap();
        assert_eq!(search.patient.as_deref(), Some("p1"));
        assert!(search.dates.from.is_some() && search.dates.to.is_none());
        assert!(search.revinclude_provenance);
        assert_eq!(search.includes, ["coverage"]);
        assert_eq!(search.count, 100);
    }

    #[test]
    fn provenance_is_searched_by_the_records_it_targets() {
        let search = parse("Provenance", &q(&[("target", "ExplanationOfBenefit/e1,Condition/c2")])).unwrap();
        assert_eq!(
            search.targets,
            [("ExplanationOfBenefit".to_owned(), "e1".to_owned()), ("Condition".to_owned(), "c2".to_owned())]
        );
        let many = vec!["Condition/c"; MAX_TARGETS + 1].join(",");
        assert!(parse("Provenance", &q(&[("target", &many)])).is_err());
    }

    #[test]
    fn refuses_what_it_would_otherwise_ignore() {
        for (t, pairs) in [
            ("Condition", vec![("code", "123")]),
            ("Condition", vec![("date", "2020")]),
            ("Condition", vec![("onset-date", "yesterday")]),
            ("Condition", vec![("onset-date", "ne2020")]),
            ("Condition", vec![("_revinclude", "Provenance:agent")]),
            ("Condition", vec![("_include", "Condition:subject")]),
            ("Condition", vec![("patient", "Practitioner/1")]),
            ("Condition", vec![("patient", "p1"), ("subject", "p2")]),
            ("Condition", vec![("_format", "xml")]),
            ("Condition", vec![("_count", "-1")]),
            ("Condition", vec![("_cursor", "x")]),
            ("Condition", vec![("target", "Condition/c1")]),
            ("Provenance", vec![("target", "c1")]),
            ("Provenance", vec![("target", ",")]),
        ] {
            let err = parse(t, &q(&pairs)).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{pairs:?}");
        }
    }

    #[test]
    fn date_prefixes() {
        let mut bounds = Bounds::default();
        bounds.add("date", "gt2020-01-01").unwrap();
        bounds.add("date", "lt2020-03").unwrap();
        let day = datetime::parse("2020-01-01").unwrap();
        assert_eq!(bounds.from, Some(day.end + 1));
        assert_eq!(bounds.to, Some(datetime::parse("2020-03").unwrap().start - 1));
        assert!(!bounds.is_empty_range());
        bounds.add("date", "le2019").unwrap();
        assert!(bounds.is_empty_range());
        assert_eq!(count("5000").unwrap(), MAX_COUNT);
        assert_eq!(Cursor::parse("10.20.30").unwrap(), Cursor { after: 10, snapshot: 20, total: 30 });
        for bad in ["10.20", "10.20.30.40", "a.b.c", ""] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
