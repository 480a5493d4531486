//! Reading a `$member-match` request (HRex 1.2 `hrex-parameters-member-match-in`): the
//! member's demographics, the card's ids, and the Consent — or which parameter and element is
//! wrong, for a 400 that says so.

use baton_vocab::ConsentPolicy;
use serde_json::Value;
use time::Date;

/// HRex Consent policies, by the fragment of their URI.
const POLICY_BASE: &str = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#";

/// A `$member-match` request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRequest {
    pub family: String,
    pub given: Vec<String>,
    pub birth_date: Date,
    /// Member and subscriber ids from the old card (`CoverageToMatch`) and the Patient's `MB`
    /// identifiers: the ids this plan may know the member by.
    pub member_ids: Vec<String>,
    pub consent: ConsentTerms,
}

/// What the member's Consent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentTerms {
    pub active: bool,
    /// `None`: a policy Baton does not know.
    pub policy: Option<ConsentPolicy>,
    pub start: Date,
    pub end: Date,
    /// The plans it names as the source of the data (`provision.actor`, role `performer`) and as
    /// the recipient (role `IRCP`), as `system|value` identifiers.
    pub sources: Vec<String>,
    pub recipients: Vec<String>,
    /// The Consent as sent.
    pub json: String,
}

/// A request that is not a valid `$member-match` input: what is wrong, naming the parameter
/// and element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// Reads a `$member-match` body (a `Parameters` resource).
pub fn read(body: &Value) -> Result<MatchRequest, Invalid> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(invalid("the body must be a Parameters resource"));
    }
    let parameters =
        body.get("parameter").and_then(Value::as_array).ok_or_else(|| invalid("Parameters.parameter is missing"))?;
    read_parts(parameters)
}

/// Reads the parts of one member (the body's parameters, or a `MemberBundle`'s parts).
pub fn read_parts(parameters: &[Value]) -> Result<MatchRequest, Invalid> {
    let patient = one(parameters, "MemberPatient", "Patient")?.ok_or_else(|| invalid("MemberPatient is required"))?;
    let coverage =
        one(parameters, "CoverageToMatch", "Coverage")?.ok_or_else(|| invalid("CoverageToMatch is required"))?;
    one(parameters, "CoverageToLink", "Coverage")?;
    let consent = one(parameters, "Consent", "Consent")?.ok_or_else(|| invalid("Consent is required"))?;

    let patient_id = text(patient, "id").ok_or_else(|| invalid("MemberPatient.id is required (mm-6)"))?;
    let local = format!("Patient/{patient_id}");
    let refers = |value: Option<&Value>, element: &str| match value
        .and_then(|r| r.get("reference"))
        .and_then(Value::as_str)
    {
        Some(reference) if reference == local => Ok(()),
        Some(reference) => Err(invalid(format!(
            "{element} is {reference:?}; it must be the local reference {local:?} to MemberPatient (mm-6)"
        ))),
        None => Err(invalid(format!("{element} is required: the local reference {local:?} to MemberPatient (mm-6)"))),
    };
    refers(coverage.get("beneficiary"), "CoverageToMatch.beneficiary")?;
    refers(consent.get("patient"), "Consent.patient")?;

    let (family, given) = name(patient)?;
    let birth_date =
        text(patient, "birthDate").ok_or_else(|| invalid("MemberPatient.birthDate is required")).and_then(|b| {
            baton_vocab::day::parse(b).ok_or_else(|| invalid(format!("MemberPatient.birthDate {b:?} is not a date")))
        })?;
    let birthsex = patient
        .get("extension")
        .and_then(Value::as_array)
        .is_some_and(|e| e.iter().any(|x| text(x, "url").is_some_and(|u| u.ends_with("us-core-birthsex"))));
    if text(patient, "gender").is_none() && !birthsex {
        return Err(invalid("MemberPatient needs gender or the US Core birth sex extension (hrex-pat-1)"));
    }

    let mut member_ids: Vec<String> = Vec::new();
    let mut add = |id: &str| {
        let id = id.trim();
        if !id.is_empty() && !member_ids.iter().any(|m| m == id) {
            member_ids.push(id.to_owned());
        }
    };
    if let Some(subscriber) = text(coverage, "subscriberId") {
        add(subscriber);
    }
    for identifier in array(coverage, "identifier") {
        if let Some(value) = text(identifier, "value") {
            add(value);
        }
    }
    for identifier in array(patient, "identifier").filter(|i| is_member_number(i)) {
        if let Some(value) = text(identifier, "value") {
            add(value);
        }
    }
    if member_ids.is_empty() {
        return Err(invalid("CoverageToMatch needs the member id (identifier) or subscriberId from the old card"));
    }
    Ok(MatchRequest { family, given, birth_date, member_ids, consent: consent_terms(consent)? })
}

/// The one parameter `name` (a resource of `resource_type`), if present; two are an error.
fn one<'a>(parameters: &'a [Value], name: &str, resource_type: &str) -> Result<Option<&'a Value>, Invalid> {
    let mut found = parameters.iter().filter(|p| text(p, "name") == Some(name));
    let Some(first) = found.next() else { return Ok(None) };
    if found.next().is_some() {
        return Err(invalid(format!("{name} is given more than once")));
    }
    let resource =
        first.get("resource").ok_or_else(|| invalid(format!("{name} must carry a {resource_type} resource")))?;
    if text(resource, "resourceType") != Some(resource_type) {
        return Err(invalid(format!("{name} must be a {resource_type}")));
    }
    Ok(Some(resource))
}

/// The member's family name and given names (the official name, else the first with both).
fn name(patient: &Value) -> Result<(String, Vec<String>), Invalid> {
    let names: Vec<&Value> = array(patient, "name").collect();
    let chosen = names
        .iter()
        .find(|n| text(n, "use") == Some("official") && text(n, "family").is_some())
        .or_else(|| names.iter().find(|n| text(n, "family").is_some()))
        .ok_or_else(|| invalid("MemberPatient.name.family is required"))?;
    let given: Vec<String> = array(chosen, "given").filter_map(Value::as_str).map(str::to_owned).collect();
    if given.is_empty() {
        return Err(invalid("MemberPatient.name.given is required"));
    }
    Ok((text(chosen, "family").unwrap_or_default().to_owned(), given))
}

fn consent_terms(consent: &Value) -> Result<ConsentTerms, Invalid> {
    let policy_uris: Vec<&str> = array(consent, "policy").filter_map(|p| text(p, "uri")).collect();
    let policy = match policy_uris.as_slice() {
        [] => return Err(invalid("Consent.policy.uri is required (#regular or #sensitive)")),
        [uri] => uri.strip_prefix(POLICY_BASE).and_then(|fragment| fragment.parse::<ConsentPolicy>().ok()),
        _ => return Err(invalid("Consent.policy must name one policy")),
    };
    let period = consent.get("provision").and_then(|p| p.get("period"));
    let day = |element: &str| {
        let value = period.and_then(|p| text(p, element));
        value
            .and_then(|v| baton_vocab::day::parse(v.get(..10).unwrap_or(v)))
            .ok_or_else(|| invalid(format!("Consent.provision.period.{element} is required, as a date")))
    };
    Ok(ConsentTerms {
        active: text(consent, "status") == Some("active"),
        policy,
        start: day("start")?,
        end: day("end")?,
        sources: actors(consent, "performer"),
        recipients: actors(consent, "IRCP"),
        json: consent.to_string(),
    })
}

/// The identifiers (`system|value`) of the Consent's actors in `role`.
fn actors(consent: &Value, role: &str) -> Vec<String> {
    let provision = consent.get("provision").unwrap_or(&Value::Null);
    array(provision, "actor")
        .filter(|actor| {
            let codings = actor.get("role").map(|r| array(r, "coding").collect::<Vec<_>>()).unwrap_or_default();
            codings.iter().any(|c| text(c, "code") == Some(role))
        })
        .filter_map(|actor| actor.get("reference").and_then(|r| r.get("identifier")))
        .filter_map(|identifier| Some(format!("{}|{}", text(identifier, "system")?, text(identifier, "value")?)))
        .collect()
}

fn is_member_number(identifier: &Value) -> bool {
    identifier
        .get("type")
        .and_then(|t| t.get("coding"))
        .and_then(Value::as_array)
        .is_some_and(|codings| codings.iter().any(|c| text(c, "code") == Some("MB")))
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value.get(key).and_then(Value::as_array).into_iter().flatten()
}
