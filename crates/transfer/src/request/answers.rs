//! Reading what the previous plan answered: the completion manifest (Bulk Data STU2: `output`,
//! `error`; Bulk 3.0 `outcome`), and the match result Groups (PDex 2.2: Group NDJSON with
//! `MatchedMembers`, `NonMatchedMembers`, `ConsentConstrainedMembers`; STU 2.1: the same Groups
//! inside a Parameters envelope).

use baton_vocab::MatchResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The extension naming the Patient as submitted, contained in the Group (§pdex-150).
pub const MATCH_PARAMETERS: &str = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters";

/// One file of the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    pub resource_type: String,
    pub url: String,
}

/// A completion manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub transaction_time: Option<String>,
    pub requires_access_token: bool,
    pub output: Vec<OutputFile>,
    /// OperationOutcome files (`error` in STU2, `outcome` in 3.0).
    pub errors: Vec<OutputFile>,
}

/// Reads a completion manifest.
pub fn manifest(json: &Value) -> Result<Manifest, String> {
    let files = |key: &str| -> Result<Vec<OutputFile>, String> {
        json[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let url = f["url"].as_str().ok_or_else(|| format!("a file in the manifest's {key} has no url"))?;
                Ok(OutputFile { resource_type: f["type"].as_str().unwrap_or("").to_owned(), url: url.to_owned() })
            })
            .collect()
    };
    if json["output"].is_null() {
        return Err("the completion manifest has no output".into());
    }
    let mut errors = files("error")?;
    errors.extend(files("outcome")?);
    Ok(Manifest {
        transaction_time: json["transactionTime"].as_str().map(str::to_owned),
        requires_access_token: json["requiresAccessToken"].as_bool().unwrap_or(false),
        output: files("output")?,
        errors,
    })
}

/// What a bulk match said of the members sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchAnswer {
    /// The MatchedMembers Group's id (what the export asks for), when one has members.
    pub matched_group: Option<String>,
    /// By the key each member was sent with: the result and, for a match, their Patient id there.
    pub results: Vec<(String, MatchResult, Option<String>)>,
    /// Entries that named no member sent (said in words for staff).
    pub problems: Vec<String>,
}

impl MatchAnswer {
    /// Reads one Group of the answer. `key_system` is the identifier system the submitted
    /// Patients carried their key in.
    pub fn read_group(&mut self, group: &Value, key_system: &str) {
        let code = group["code"]["coding"].as_array().into_iter().flatten().find_map(|c| c["code"].as_str());
        let result = match code {
            Some("match") => MatchResult::Matched,
            Some("nomatch") => MatchResult::NoMatch,
            Some("consentconstraint") => MatchResult::ConsentRefused,
            other => {
                self.problems.push(format!("a Group with result code {other:?} was not understood"));
                return;
            }
        };
        let contained: Vec<&Value> = group["contained"].as_array().into_iter().flatten().collect();
        let members = group["member"].as_array().cloned().unwrap_or_default();
        if result == MatchResult::Matched
            && !members.is_empty()
            && let Some(id) = group["id"].as_str()
        {
            self.matched_group.get_or_insert_with(|| id.to_owned());
        }
        for member in members {
            let entity = &member["entity"];
            let submitted = entity["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == MATCH_PARAMETERS)
                .and_then(|e| e["valueReference"]["reference"].as_str())
                .or_else(|| entity["reference"].as_str().filter(|r| r.starts_with('#')))
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|local| contained.iter().find(|c| c["id"] == local));
            let Some(key) = submitted.and_then(|patient| key_of(patient, key_system)) else {
                self.problems.push("a Group member named no Patient this plan sent".into());
                continue;
            };
            let patient = entity["reference"]
                .as_str()
                .and_then(|r| r.strip_prefix("Patient/").or_else(|| r.rsplit_once("/Patient/").map(|(_, id)| id)))
                .map(str::to_owned);
            if result == MatchResult::Matched && patient.is_none() {
                self.problems.push(format!("member {key} matched without naming their Patient there"));
                self.results.push((key, MatchResult::NoMatch, None));
                continue;
            }
            let patient = if result == MatchResult::Matched { patient } else { None };
            self.results.push((key, result, patient));
        }
    }

    /// Reads an STU 2.1 Parameters envelope: a Group per `MatchedMembers`,
    /// `NonMatchedMembers`, `ConsentConstrainedMembers` parameter.
    pub fn read_parameters(&mut self, parameters: &Value, key_system: &str) {
        for parameter in parameters["parameter"].as_array().into_iter().flatten() {
            if parameter["resource"]["resourceType"] == "Group" {
                self.read_group(&parameter["resource"], key_system);
            }
        }
    }
}

/// The key a submitted Patient carried: its identifier in `key_system`, else its id.
fn key_of(patient: &Value, key_system: &str) -> Option<String> {
    patient["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == key_system)
        .and_then(|i| i["value"].as_str())
        .or_else(|| patient["id"].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/pdex-2.2.0/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    const EXAMPLE_SYSTEM: &str = "http://example.org/new-payer/identifiers/member";

    #[test]
    fn the_ig_s_matched_group_names_each_member_s_patient_there() {
        let mut answer = MatchAnswer::default();
        answer.read_group(&example("Group-07e72a15407547bf9d03f522aa536a72.1.json"), EXAMPLE_SYSTEM);
        assert_eq!(answer.matched_group.as_deref(), Some("07e72a15407547bf9d03f522aa536a72.1"));
        assert_eq!(
            answer.results,
            vec![
                ("55678".into(), MatchResult::Matched, Some("1001".into())),
                ("45567".into(), MatchResult::Matched, Some("2002".into())),
            ]
        );
    }

    #[test]
    fn the_ig_s_parameters_envelope_gives_the_same_answers() {
        let mut answer = MatchAnswer::default();
        answer.read_parameters(&example("Parameters-payer-multi-member-match-out.json"), EXAMPLE_SYSTEM);
        let matched: Vec<_> = answer.results.iter().filter(|r| r.1 == MatchResult::Matched).collect();
        assert_eq!(matched.len(), 2, "{answer:?}");
        assert!(answer.results.iter().any(|r| r.1 != MatchResult::Matched), "{answer:?}");
        assert_eq!(answer.matched_group.as_deref(), Some("07e72a15407547bf9d03f522aa536a72"));
    }

    #[test]
    fn no_match_and_consent_constraint_groups_carry_no_patient() {
        let mut answer = MatchAnswer::default();
        answer.read_group(&example("Group-example-pdex-member-no-match-group.json"), EXAMPLE_SYSTEM);
        answer.read_group(&example("Group-example-pdex-member-consent-constraint-group.json"), EXAMPLE_SYSTEM);
        assert!(answer.matched_group.is_none());
        assert!(answer.results.iter().all(|(_, _, patient)| patient.is_none()));
        assert!(answer.results.iter().any(|r| r.1 == MatchResult::NoMatch));
        assert!(answer.results.iter().any(|r| r.1 == MatchResult::ConsentRefused));
    }

    #[test]
    fn a_manifest_lists_output_and_errors_of_either_version() {
        let json = serde_json::json!({"transactionTime": "2026-12-01T00:00:00Z", "requiresAccessToken": true,
            "output": [{"type": "Group", "url": "https://old.example/f/1"}],
            "error": [{"type": "OperationOutcome", "url": "https://old.example/f/e"}],
            "outcome": [{"type": "OperationOutcome", "url": "https://old.example/f/o"}]});
        let m = manifest(&json).unwrap();
        assert!(m.requires_access_token);
        assert_eq!(m.output.len(), 1);
        assert_eq!(m.errors.len(), 2);
        assert!(manifest(&serde_json::json!({"resourceType": "OperationOutcome"})).is_err());
    }
}
