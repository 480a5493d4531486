//! A roster as a FHIR Bundle: Patients, each with this plan's Coverage; and, when the plan knows
//! them, the member's Coverage at a previous plan and their opt-in to this plan asking that plan
//! for their records (CMS-0057-F Payer-to-Payer).
//!
//! - Of a Patient's Coverages, the one starting last is this plan's; another is their previous
//!   coverage: its payer is `payor[0]` — an identifier's value (the NAIC code), its display, or
//!   the Organization it references in the Bundle — resolved against the payer directory at
//!   commit. It is concurrent when it is active with no end or ends after this plan's starts.
//! - A Consent about the Patient is their opt-in: `active` agreed, `rejected` or `inactive`
//!   declined, on its `dateTime`; its policy `…#sensitive` includes sensitive information (HRex).

use std::collections::HashMap;

use serde_json::Value;

use super::{Fields, RosterError, Row};
use crate::previous::PreviousFields;

/// Resource types a roster Bundle may hold.
const HOLDS: [&str; 4] = ["Patient", "Coverage", "Consent", "Organization"];

/// A Bundle: one row per Patient's current Coverage, in the order of the Bundle.
pub(super) fn parse_bundle(content: &str) -> Result<Vec<Row>, RosterError> {
    if content.trim().is_empty() {
        return Err(RosterError::Empty);
    }
    let bundle: Value = serde_json::from_str(content).map_err(|e| RosterError::Json(e.to_string()))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(RosterError::NotABundle);
    }
    let entries = bundle.get("entry").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    // Resources by every name a reference may use for them: fullUrl and Type/{id}.
    let mut named: HashMap<String, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(resource) = entry.get("resource") else { continue };
        if let Some(full_url) = entry.get("fullUrl").and_then(Value::as_str) {
            named.insert(full_url.to_owned(), i);
        }
        if let (Some(kind), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) {
            named.insert(format!("{kind}/{id}"), i);
        }
    }
    let resource = |i: usize| &entries[i]["resource"];
    let kind_of = |i: usize| resource(i)["resourceType"].as_str().unwrap_or_default();
    // The entry a reference names, when it is of `kind`.
    let target = |reference: Option<&str>, kind: &str| {
        reference.and_then(|r| named.get(r).copied()).filter(|i| kind_of(*i) == kind)
    };

    let mut rows = Vec::new();
    // Each Patient's Coverages and Consents, by the Patient's entry.
    let mut coverages: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut consents: HashMap<usize, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let number = i + 1;
        match entry.get("resource").and_then(|r| r.get("resourceType")).and_then(Value::as_str) {
            Some("Coverage") => {
                let beneficiary = resource(i).pointer("/beneficiary/reference").and_then(Value::as_str);
                match target(beneficiary, "Patient") {
                    Some(patient) => coverages.entry(patient).or_default().push(i),
                    None => rows.push(Row {
                        number,
                        member_id: coverage_member_id(resource(i)),
                        entry: None,
                        errors: vec![format!(
                            "Coverage.beneficiary {:?} is not a Patient in this Bundle",
                            beneficiary.unwrap_or("")
                        )],
                    }),
                }
            }
            Some("Consent") => {
                let patient = resource(i).pointer("/patient/reference").and_then(Value::as_str);
                match target(patient, "Patient") {
                    Some(patient) => {
                        consents.insert(patient, i);
                    }
                    None => rows.push(Row {
                        number,
                        member_id: None,
                        entry: None,
                        errors: vec![format!(
                            "Consent.patient {:?} is not a Patient in this Bundle",
                            patient.unwrap_or("")
                        )],
                    }),
                }
            }
            Some(kind) if HOLDS.contains(&kind) => {}
            Some(other) => rows.push(Row {
                number,
                member_id: None,
                entry: None,
                errors: vec![format!("a roster Bundle holds Patient, Coverage, Consent and Organization, not {other}")],
            }),
            None => {
                rows.push(Row { number, member_id: None, entry: None, errors: vec!["entry has no resource".into()] })
            }
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        if kind_of(i) != "Patient" || entry.get("resource").is_none() {
            continue;
        }
        let patient = resource(i);
        let Some(theirs) = coverages.get(&i) else {
            rows.push(Row {
                number: i + 1,
                member_id: patient_member_id(patient),
                entry: None,
                errors: vec!["Patient has no Coverage in this Bundle (coverage start and plan are missing)".into()],
            });
            continue;
        };
        // This plan's: the one starting last (the first of those, when several start together).
        let start = |c: usize| resource(c).pointer("/period/start").and_then(Value::as_str).unwrap_or("").to_owned();
        let current = *theirs.iter().rev().max_by_key(|c| start(**c)).expect("at least one");
        let previous: Vec<usize> = theirs.iter().copied().filter(|c| *c != current).collect();
        let organization = |reference: Option<&str>| target(reference, "Organization").map(resource);
        let fields = match previous.as_slice() {
            [] => bundle_fields(patient, resource(current), PreviousFields::default()),
            [one] => {
                let consent = consents.get(&i).map(|c| resource(*c));
                let previous = previous_fields(resource(*one), resource(current), consent, organization);
                bundle_fields(patient, resource(current), previous)
            }
            _ => {
                rows.push(Row {
                    number: current + 1,
                    member_id: coverage_member_id(resource(current)),
                    entry: None,
                    errors: vec![format!(
                        "the Patient has {} Coverages besides this plan's: a roster carries one previous coverage",
                        previous.len()
                    )],
                });
                continue;
            }
        };
        let mut row = fields.check(current + 1);
        if previous.is_empty() && consents.contains_key(&i) {
            row.errors.push("the Patient has a Consent (an opt-in) but no previous Coverage in this Bundle".into());
            row.entry = None;
        }
        rows.push(row);
    }
    rows.sort_by_key(|row| row.number);
    Ok(rows)
}

/// The previous coverage and the opt-in, written as the CSV columns would be.
fn previous_fields<'a>(
    previous: &'a Value,
    current: &Value,
    consent: Option<&Value>,
    organization: impl Fn(Option<&str>) -> Option<&'a Value>,
) -> PreviousFields {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let day = |v: Option<&Value>| text(v).chars().take(10).collect::<String>();
    let payor = previous.pointer("/payor/0");
    let referenced = organization(payor.and_then(|p| p.get("reference")).and_then(Value::as_str));
    let payer = [
        payor.and_then(|p| p.pointer("/identifier/value")),
        payor.and_then(|p| p.get("display")),
        referenced.and_then(|o| o.pointer("/identifier/0/value")),
        referenced.and_then(|o| o.get("name")),
    ]
    .into_iter()
    .flatten()
    .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()))
    .unwrap_or_default()
    .to_owned();
    let end = day(previous.pointer("/period/end"));
    let starts_here = day(current.pointer("/period/start"));
    let concurrent = previous["status"] == "active" && (end.is_empty() || end >= starts_here);
    let (opt_in, on, sensitive) = match consent {
        Some(consent) => {
            let agreed = match consent["status"].as_str() {
                Some("active") => "yes",
                Some("rejected" | "inactive") => "no",
                other => other.unwrap_or("no status"),
            };
            let sensitive = consent["policy"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["uri"].as_str().is_some_and(|u| u.ends_with("#sensitive"))));
            (agreed.to_owned(), day(consent.get("dateTime")), if sensitive { "yes" } else { "no" }.to_owned())
        }
        None => (String::new(), String::new(), String::new()),
    };
    PreviousFields {
        payer,
        member_id: coverage_member_id(previous).unwrap_or_default(),
        start: day(previous.pointer("/period/start")),
        end,
        concurrent: if concurrent { "yes" } else { "no" }.into(),
        opt_in,
        opt_in_date: on,
        sensitive,
    }
}

fn coverage_member_id(coverage: &Value) -> Option<String> {
    coverage
        .get("subscriberId")
        .and_then(Value::as_str)
        .or_else(|| coverage.pointer("/identifier/0/value").and_then(Value::as_str))
        .map(str::to_owned)
}

/// The identifier typed MB (member number), else the first.
fn patient_member_id(patient: &Value) -> Option<String> {
    let identifiers = patient.get("identifier").and_then(Value::as_array)?;
    let is_mb = |i: &&Value| {
        i.pointer("/type/coding")
            .and_then(Value::as_array)
            .is_some_and(|codings| codings.iter().any(|c| c.get("code").and_then(Value::as_str) == Some("MB")))
    };
    identifiers
        .iter()
        .find(is_mb)
        .or_else(|| identifiers.first())
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn bundle_fields(patient: &Value, coverage: &Value, previous: PreviousFields) -> Fields {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or("").to_owned();
    let name = patient
        .get("name")
        .and_then(Value::as_array)
        .and_then(|names| names.iter().find(|n| n["use"] == "official").or_else(|| names.first()));
    let given = name
        .and_then(|n| n.get("given"))
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let email = patient
        .get("telecom")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().find(|c| c["system"] == "email"))
        .and_then(|c| c.get("value"));
    let plan = coverage.get("class").and_then(Value::as_array).and_then(|classes| {
        classes
            .iter()
            .find(|c| {
                c.pointer("/type/coding")
                    .and_then(Value::as_array)
                    .is_some_and(|codings| codings.iter().any(|k| k["code"] == "plan"))
            })
            .and_then(|c| c.get("name").or_else(|| c.get("value")))
    });
    Fields {
        member_id: coverage_member_id(coverage).or_else(|| patient_member_id(patient)).unwrap_or_default(),
        given_name: given,
        family_name: text(name.and_then(|n| n.get("family"))),
        birth_date: text(patient.get("birthDate")),
        sex: text(patient.get("gender")),
        email: text(email),
        coverage_start: text(coverage.pointer("/period/start")).chars().take(10).collect(),
        plan: text(plan),
        previous,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, parse};

    #[test]
    fn a_bundle_pairs_each_coverage_with_its_patient() {
        let bundle = serde_json::json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient",
                    "identifier": [{"type": {"coding": [{"code": "MB"}]}, "value": "NP-2001"}],
                    "name": [{"family": "Okafor", "given": ["Ada", "N."]}], "gender": "female",
                    "birthDate": "1988-07-14", "telecom": [{"system": "email", "value": "Ada@Example.org"}]}},
                {"resource": {"resourceType": "Coverage", "status": "active", "subscriberId": "NP-2001",
                    "beneficiary": {"reference": "urn:uuid:p1"}, "period": {"start": "2026-02-01"},
                    "class": [{"type": {"coding": [{"code": "plan"}]}, "value": "G1", "name": "Gold PPO"}]}},
                {"resource": {"resourceType": "Coverage", "beneficiary": {"reference": "Patient/nobody"}}},
                {"resource": {"resourceType": "Patient", "id": "lonely", "identifier": [{"value": "NP-2003"}]}},
                {"resource": {"resourceType": "Observation"}}
            ]
        });
        let preview = parse(Format::FhirBundle, &bundle.to_string()).unwrap();
        assert_eq!(preview.rows.len(), 4, "{preview:#?}");
        let ada = preview.rows[0].entry.as_ref().expect("valid");
        assert_eq!((ada.member_id.as_str(), ada.given_name.as_str()), ("NP-2001", "Ada N."));
        assert_eq!(ada.email.as_deref(), Some("ada@example.org"));
        assert_eq!(ada.plan, "Gold PPO");
        assert!(preview.rows[1].errors[0].contains("Patient/nobody"));
        assert!(preview.rows[2].errors[0].contains("no Coverage"));
        assert_eq!(preview.rows[2].member_id.as_deref(), Some("NP-2003"));
        assert!(preview.rows[3].errors[0].contains("not Observation"));
    }

    #[test]
    fn a_second_coverage_is_the_previous_one_and_a_consent_the_opt_in() {
        let bundle = serde_json::json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ada"]}],
                    "gender": "female", "birthDate": "1988-07-14"}},
                {"fullUrl": "urn:uuid:rb", "resource": {"resourceType": "Organization", "name": "Riverbend Health Plan",
                    "identifier": [{"system": "urn:oid:2.16.840.1.113883.6.300", "value": "90001"}]}},
                {"resource": {"resourceType": "Coverage", "status": "active", "subscriberId": "RB-77",
                    "beneficiary": {"reference": "urn:uuid:p1"}, "payor": [{"reference": "urn:uuid:rb"}],
                    "period": {"start": "2019-01-01"}}},
                {"resource": {"resourceType": "Coverage", "status": "active", "subscriberId": "NP-2001",
                    "beneficiary": {"reference": "urn:uuid:p1"}, "period": {"start": "2026-02-01"},
                    "class": [{"type": {"coding": [{"code": "plan"}]}, "value": "G1", "name": "Gold PPO"}]}},
                {"resource": {"resourceType": "Consent", "status": "active", "dateTime": "2026-01-20T10:00:00Z",
                    "patient": {"reference": "urn:uuid:p1"},
                    "policy": [{"uri": "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"}]}}
            ]
        });
        let preview = parse(Format::FhirBundle, &bundle.to_string()).unwrap();
        assert_eq!(preview.rows.len(), 1, "{preview:#?}");
        let ada = preview.rows[0].entry.as_ref().expect("valid");
        assert_eq!(ada.member_id, "NP-2001", "this plan's Coverage starts last");
        let previous = ada.previous.as_ref().expect("a previous coverage");
        assert_eq!((previous.payer.as_str(), previous.member_id.as_str()), ("90001", "RB-77"));
        assert!(previous.concurrent, "active, with no end: still covered there");
        let opt_in = previous.opt_in.as_ref().expect("opted in");
        assert!(opt_in.agreed && opt_in.include_sensitive);
        assert_eq!(baton_vocab::day::format(opt_in.on), "2026-01-20");

        // A declined Consent, and a previous coverage that ended: not concurrent, opted out.
        let mut bundle = bundle;
        bundle["entry"][2]["resource"]["period"]["end"] = "2026-01-31".into();
        bundle["entry"][4]["resource"]["status"] = "rejected".into();
        let preview = parse(Format::FhirBundle, &bundle.to_string()).unwrap();
        let previous = preview.rows[0].entry.as_ref().unwrap().previous.clone().unwrap();
        assert!(!previous.concurrent);
        assert!(!previous.opt_in.unwrap().agreed);

        // A Consent without a previous coverage is an error on the row, not ignored.
        let mut bundle = bundle;
        bundle["entry"].as_array_mut().unwrap().remove(2);
        let preview = parse(Format::FhirBundle, &bundle.to_string()).unwrap();
        assert!(preview.rows[0].entry.is_none(), "{preview:#?}");
    }
}
