//! Is a resource sensitive? Two independent signals (spec digest §5):
//!
//! 1. **Security labels** in `meta.security` (FHIR R4 security labels; HL7 DS4P): the
//!    confidentiality codes `R` and `V` (`v3-Confidentiality`), and the sensitivity and
//!    privacy-law codes of `v3-ActCode` — `SPI` and its children (`BH` with `COGN`, `DVD`,
//!    `EMOTDIS`; `MH`; `PSY`; `PSYTHPN`; `SUD` with `ETHUD`, `OPIOIDUD`), `ETH`, `HIV`, `SDV`,
//!    `SEX`, `STD`, and `42CFRPart2`. The codes `ETH`, `HIV`, `PSY`, `SDV` retired from
//!    `v3-Confidentiality` are honoured too (old senders still use them).
//! 2. **Codes** — because neither PDex nor HRex obliges anyone to label: a resource is also
//!    sensitive when any Coding in it (diagnoses inside claims included) is in the table
//!    below. The table favours excluding too much over letting sensitive care through.
//!
//! Sources of the code table:
//! - ICD-10-CM (CDC/NCHS, FY2025 tabular list): chapter 5 "Mental, Behavioral and
//!   Neurodevelopmental disorders" F01–F99, of which F10–F19 "due to psychoactive substance
//!   use"; B20 HIV disease, Z21 asymptomatic HIV status, R75 inconclusive HIV test, O98.7 HIV
//!   complicating pregnancy, Z71.7 HIV counselling; A50–A64 infections with a predominantly
//!   sexual mode of transmission; T74/T76 adult and child abuse, confirmed/suspected; O9A.3–O9A.5
//!   physical, sexual, psychological abuse complicating pregnancy; Z71.41/Z71.51 alcohol and
//!   drug abuse counselling; R45.851 suicidal ideation.
//! - SNOMED CT (International edition): the concepts listed in [`SNOMED`] (disorders commonly
//!   coded in claims and problem lists; no hierarchy reasoning).
//! - RxNorm (NLM RxNav, ingredient RxCUIs): medications for opioid/alcohol use disorder,
//!   antipsychotics and lithium, and HIV antiretrovirals listed in [`RXNORM`]. Prescriptions
//!   and claims carry product codes (RxNorm SCDs, NDCs) rather than ingredients, so a medication
//!   coding (RxNorm or NDC) whose display names one of these ingredients counts too.
//! - LOINC: HIV tests and behavioral-health/substance screening instruments in [`LOINC`].
//! - CPT (AMA) psychiatry codes 90785–90899 and SBIRT 99408–99409; HCPCS Level II
//!   H0001–H2037 (behavioral health and substance use services) and G2067–G2088 (opioid
//!   treatment programs).

use serde_json::Value;

use crate::walk;

/// What kind of sensitive information (the vocabulary's `SensitiveKind`).
pub use baton_vocab::SensitiveKind as Kind;

/// How a resource was found sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The sender labelled it (`meta.security`).
    Label,
    /// Baton's classifier found a sensitive code in it.
    Classifier,
}

impl Source {
    pub fn key(self) -> &'static str {
        match self {
            Source::Label => "label",
            Source::Classifier => "classifier",
        }
    }
}

/// One reason a resource is sensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reason {
    pub source: Source,
    pub kind: Kind,
}

impl Reason {
    /// Stable name for counting, e.g. `label:substance_use`.
    pub fn key(self) -> String {
        format!("{}:{}", self.source.key(), self.kind.key())
    }

    /// The reason a [`Reason::key`] names.
    pub fn from_key(key: &str) -> Option<Self> {
        let (source, kind) = key.split_once(':')?;
        let source = [Source::Label, Source::Classifier].into_iter().find(|s| s.key() == source)?;
        Some(Self { source, kind: kind.parse().ok()? })
    }
}

const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// The sensitivity label codes (system `v3-ActCode`) and what they mean.
const ACT_CODE_LABELS: &[(&str, Kind)] = &[
    ("SPI", Kind::Restricted),
    ("BH", Kind::BehavioralHealth),
    ("COGN", Kind::BehavioralHealth),
    ("DVD", Kind::BehavioralHealth),
    ("EMOTDIS", Kind::BehavioralHealth),
    ("MH", Kind::BehavioralHealth),
    ("PSY", Kind::BehavioralHealth),
    ("PSYTHPN", Kind::BehavioralHealth),
    ("SUD", Kind::SubstanceUse),
    ("ETHUD", Kind::SubstanceUse),
    ("OPIOIDUD", Kind::SubstanceUse),
    ("ETH", Kind::SubstanceUse),
    ("42CFRPart2", Kind::SubstanceUse),
    ("HIV", Kind::Hiv),
    ("SDV", Kind::Violence),
    ("SEX", Kind::SexualHealth),
    ("STD", Kind::SexualHealth),
];

/// The reasons the labels in `meta.security` make a resource sensitive.
pub fn label_reasons(resource: &Value) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let Some(labels) = resource.pointer("/meta/security").and_then(Value::as_array) else {
        return reasons;
    };
    for label in labels {
        let system = label.get("system").and_then(Value::as_str).unwrap_or("");
        let Some(code) = label.get("code").and_then(Value::as_str) else { continue };
        if let Some(kind) = label_kind(system, code) {
            push_unique(&mut reasons, Reason { source: Source::Label, kind });
        }
    }
    reasons
}

/// The meaning of one security label, if it marks sensitive information.
pub fn label_kind(system: &str, code: &str) -> Option<Kind> {
    match system {
        CONFIDENTIALITY => match code {
            "R" | "V" => Some(Kind::Restricted),
            // Retired from v3-Confidentiality in favour of v3-ActCode, still sent by some.
            "ETH" => Some(Kind::SubstanceUse),
            "HIV" => Some(Kind::Hiv),
            "PSY" => Some(Kind::BehavioralHealth),
            "SDV" => Some(Kind::Violence),
            _ => None,
        },
        ACT_CODE => ACT_CODE_LABELS.iter().find(|(c, _)| *c == code).map(|(_, kind)| *kind),
        _ => None,
    }
}

const ICD10: &[&str] = &["http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10"];
const SNOMED_SYSTEM: &str = "http://snomed.info/sct";
const RXNORM_SYSTEM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const LOINC_SYSTEM: &str = "http://loinc.org";
const CPT_SYSTEM: &str = "http://www.ama-assn.org/go/cpt";
const NDC_SYSTEM: &str = "http://hl7.org/fhir/sid/ndc";
const HCPCS_SYSTEMS: &[&str] = &[
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
];

/// SNOMED CT concepts (International edition).
pub const SNOMED: &[(&str, Kind, &str)] = &[
    ("35489007", Kind::BehavioralHealth, "Depressive disorder"),
    ("370143000", Kind::BehavioralHealth, "Major depressive disorder"),
    ("36923009", Kind::BehavioralHealth, "Major depression, single episode"),
    ("197480006", Kind::BehavioralHealth, "Anxiety disorder"),
    ("21897009", Kind::BehavioralHealth, "Generalized anxiety disorder"),
    ("47505003", Kind::BehavioralHealth, "Posttraumatic stress disorder"),
    ("13746004", Kind::BehavioralHealth, "Bipolar disorder"),
    ("58214004", Kind::BehavioralHealth, "Schizophrenia"),
    ("69322001", Kind::BehavioralHealth, "Psychotic disorder"),
    ("74732009", Kind::BehavioralHealth, "Mental disorder"),
    ("406506008", Kind::BehavioralHealth, "Attention deficit hyperactivity disorder"),
    ("6471006", Kind::BehavioralHealth, "Suicidal thoughts"),
    ("66590003", Kind::SubstanceUse, "Alcohol dependence"),
    ("7200002", Kind::SubstanceUse, "Alcoholism"),
    ("15167005", Kind::SubstanceUse, "Alcohol abuse"),
    ("191816009", Kind::SubstanceUse, "Drug dependence"),
    ("5602001", Kind::SubstanceUse, "Opioid abuse"),
    ("75544000", Kind::SubstanceUse, "Opioid dependence"),
    ("26416006", Kind::SubstanceUse, "Drug abuse"),
    ("86406008", Kind::Hiv, "Human immunodeficiency virus infection"),
    ("165816005", Kind::Hiv, "Human immunodeficiency virus positive"),
    ("62479008", Kind::Hiv, "Acquired immune deficiency syndrome"),
    ("8098009", Kind::SexualHealth, "Sexually transmitted infectious disease"),
    ("76272004", Kind::SexualHealth, "Syphilis"),
    ("15628003", Kind::SexualHealth, "Gonorrhea"),
    ("105629000", Kind::SexualHealth, "Chlamydial infection"),
    ("95930005", Kind::Violence, "Victim of abuse"),
    ("248110008", Kind::Violence, "Victim of domestic violence"),
];

/// RxNorm ingredient RxCUIs.
pub const RXNORM: &[(&str, Kind, &str)] = &[
    ("1819", Kind::SubstanceUse, "buprenorphine"),
    ("6813", Kind::SubstanceUse, "methadone"),
    ("7243", Kind::SubstanceUse, "naltrexone"),
    ("3554", Kind::SubstanceUse, "disulfiram"),
    ("6448", Kind::BehavioralHealth, "lithium"),
    ("42351", Kind::BehavioralHealth, "lithium carbonate"),
    ("2626", Kind::BehavioralHealth, "clozapine"),
    ("35636", Kind::BehavioralHealth, "risperidone"),
    ("51272", Kind::BehavioralHealth, "quetiapine"),
    ("61381", Kind::BehavioralHealth, "olanzapine"),
    ("89013", Kind::BehavioralHealth, "aripiprazole"),
    ("5093", Kind::BehavioralHealth, "haloperidol"),
    ("36437", Kind::BehavioralHealth, "sertraline"),
    ("4493", Kind::BehavioralHealth, "fluoxetine"),
    ("321988", Kind::BehavioralHealth, "escitalopram"),
    ("2556", Kind::BehavioralHealth, "citalopram"),
    ("276237", Kind::Hiv, "emtricitabine"),
    ("195085", Kind::Hiv, "efavirenz"),
    ("1433868", Kind::Hiv, "dolutegravir"),
];

/// LOINC codes.
pub const LOINC: &[(&str, Kind, &str)] = &[
    ("7918-6", Kind::Hiv, "HIV 1+2 Ab [Presence] in Serum"),
    ("75622-1", Kind::Hiv, "HIV 1+2 Ab+HIV 1 p24 Ag [Presence] in Serum or Plasma by Immunoassay"),
    ("56888-1", Kind::Hiv, "HIV 1+2 Ab+HIV 1 p24 Ag [Presence] in Serum or Plasma"),
    ("20447-9", Kind::Hiv, "HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by Probe with amplification"),
    ("25836-8", Kind::Hiv, "HIV 1 RNA [#/volume] (viral load) in Serum or Plasma by NAA with probe detection"),
    ("44249-1", Kind::BehavioralHealth, "PHQ-9 quick depression assessment panel"),
    ("44261-6", Kind::BehavioralHealth, "PHQ-9 total score"),
    ("55757-9", Kind::BehavioralHealth, "PHQ-2 panel"),
    ("69737-5", Kind::BehavioralHealth, "GAD-7 panel"),
    ("70274-6", Kind::BehavioralHealth, "GAD-7 total score"),
    ("72109-2", Kind::SubstanceUse, "AUDIT-C panel"),
    ("75626-2", Kind::SubstanceUse, "AUDIT-C total score"),
];

/// Whether a code (in any of the classified systems) is sensitive, and how.
pub fn code_kind(system: &str, code: &str) -> Option<Kind> {
    if ICD10.contains(&system) {
        return icd10_kind(code);
    }
    let find = |table: &[(&str, Kind, &str)]| table.iter().find(|(c, _, _)| *c == code).map(|(_, k, _)| *k);
    match system {
        SNOMED_SYSTEM => find(SNOMED),
        RXNORM_SYSTEM => find(RXNORM),
        LOINC_SYSTEM => find(LOINC),
        CPT_SYSTEM => cpt_kind(code),
        s if HCPCS_SYSTEMS.contains(&s) => hcpcs_kind(code),
        _ => None,
    }
}

fn icd10_kind(code: &str) -> Option<Kind> {
    let code = code.trim().to_ascii_uppercase().replace('.', "");
    let category = code.get(..3)?;
    let letter = category.chars().next()?;
    // Categories like O9A (letter, digit, letter) have no number: only the prefixes below match.
    let number: u16 = category.get(1..3)?.parse().unwrap_or(u16::MAX);
    match letter {
        'F' if (10..=19).contains(&number) => Some(Kind::SubstanceUse),
        'F' if (1..=99).contains(&number) => Some(Kind::BehavioralHealth),
        'B' if number == 20 => Some(Kind::Hiv),
        'Z' if number == 21 => Some(Kind::Hiv),
        'R' if number == 75 => Some(Kind::Hiv),
        'A' if (50..=64).contains(&number) => Some(Kind::SexualHealth),
        'T' if number == 74 || number == 76 => Some(Kind::Violence),
        _ => match code.as_str() {
            c if c.starts_with("O987") => Some(Kind::Hiv),
            c if c.starts_with("Z717") => Some(Kind::Hiv),
            c if c.starts_with("O9A3") || c.starts_with("O9A4") || c.starts_with("O9A5") => Some(Kind::Violence),
            c if c.starts_with("Z7141") || c.starts_with("Z7151") => Some(Kind::SubstanceUse),
            c if c.starts_with("R45851") => Some(Kind::BehavioralHealth),
            _ => None,
        },
    }
}

fn cpt_kind(code: &str) -> Option<Kind> {
    let number: u32 = code.trim().parse().ok()?;
    match number {
        90785..=90899 => Some(Kind::BehavioralHealth),
        99408 | 99409 => Some(Kind::SubstanceUse),
        _ => None,
    }
}

fn hcpcs_kind(code: &str) -> Option<Kind> {
    let code = code.trim().to_ascii_uppercase();
    let (letter, digits) = code.split_at_checked(1)?;
    let number: u32 = digits.parse().ok()?;
    match letter {
        "H" if (1..=2037).contains(&number) => Some(Kind::BehavioralHealth),
        "G" if (2067..=2088).contains(&number) => Some(Kind::SubstanceUse),
        _ => None,
    }
}

/// A medication product coding (RxNorm or NDC) whose display names a listed ingredient.
pub fn medication_display_kind(system: &str, display: &str) -> Option<Kind> {
    if system != RXNORM_SYSTEM && system != NDC_SYSTEM {
        return None;
    }
    let display = display.to_ascii_lowercase();
    RXNORM.iter().find(|(_, _, ingredient)| display.contains(ingredient)).map(|(_, kind, _)| *kind)
}

/// The reasons the codes in a resource make it sensitive.
pub fn classifier_reasons(resource: &Value) -> Vec<Reason> {
    let mut reasons = Vec::new();
    walk::codings(resource, &mut |system, code, display| {
        let kind = code_kind(system, code).or_else(|| display.and_then(|d| medication_display_kind(system, d)));
        if let Some(kind) = kind {
            push_unique(&mut reasons, Reason { source: Source::Classifier, kind });
        }
    });
    reasons
}

/// Everything that makes `resource` sensitive: labels first, then classified codes.
/// Empty when it is not sensitive.
pub fn assess(resource: &Value) -> Vec<Reason> {
    let mut reasons = label_reasons(resource);
    for reason in classifier_reasons(resource) {
        push_unique(&mut reasons, reason);
    }
    reasons
}

pub fn is_sensitive(resource: &Value) -> bool {
    !assess(resource).is_empty()
}

fn push_unique(reasons: &mut Vec<Reason>, reason: Reason) {
    if !reasons.contains(&reason) {
        reasons.push(reason);
    }
}

/// `meta.security` codings as `system|code` strings (for storage and search).
pub fn security_labels(resource: &Value) -> Vec<String> {
    resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|l| {
                    let code = l.get("code")?.as_str()?;
                    let system = l.get("system").and_then(Value::as_str).unwrap_or("");
                    Some(format!("{system}|{code}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labelled(system: &str, code: &str) -> Value {
        json!({"resourceType": "Condition", "meta": {"security": [{"system": system, "code": code}]}})
    }

    #[test]
    fn every_listed_label_is_sensitive() {
        for code in ["R", "V"] {
            assert_eq!(label_reasons(&labelled(CONFIDENTIALITY, code))[0].kind, Kind::Restricted, "{code}");
        }
        for code in [
            "SPI",
            "BH",
            "COGN",
            "DVD",
            "EMOTDIS",
            "MH",
            "PSY",
            "PSYTHPN",
            "SUD",
            "ETHUD",
            "OPIOIDUD",
            "ETH",
            "HIV",
            "SDV",
            "SEX",
            "STD",
            "42CFRPart2",
        ] {
            assert!(is_sensitive(&labelled(ACT_CODE, code)), "{code}");
        }
    }

    #[test]
    fn ordinary_labels_are_not() {
        for (system, code) in [(CONFIDENTIALITY, "N"), (CONFIDENTIALITY, "M"), (ACT_CODE, "NORDSCLCD"), ("urn:x", "BH")]
        {
            assert!(!is_sensitive(&labelled(system, code)), "{system}|{code}");
        }
    }

    #[test]
    fn icd10_ranges() {
        let kind = |code| icd10_kind(code);
        assert_eq!(kind("F32.9"), Some(Kind::BehavioralHealth));
        assert_eq!(kind("F01.50"), Some(Kind::BehavioralHealth));
        assert_eq!(kind("F99"), Some(Kind::BehavioralHealth));
        assert_eq!(kind("F10.20"), Some(Kind::SubstanceUse));
        assert_eq!(kind("F1120"), Some(Kind::SubstanceUse));
        assert_eq!(kind("F19.10"), Some(Kind::SubstanceUse));
        assert_eq!(kind("B20"), Some(Kind::Hiv));
        assert_eq!(kind("Z21"), Some(Kind::Hiv));
        assert_eq!(kind("A54.00"), Some(Kind::SexualHealth));
        assert_eq!(kind("T74.11XA"), Some(Kind::Violence));
        assert_eq!(kind("O9A.311"), Some(Kind::Violence));
        assert_eq!(kind("Z71.41"), Some(Kind::SubstanceUse));
        assert_eq!(kind("R45.851"), Some(Kind::BehavioralHealth));
        assert_eq!(kind(" f32.9 "), Some(Kind::BehavioralHealth), "case and spaces around do not matter");
        assert_eq!(kind("o9a.311"), Some(Kind::Violence));
        // Erring on the side of the member: a code with text after it still counts.
        assert_eq!(kind("F32.9 (major depressive disorder)"), Some(Kind::BehavioralHealth));
        assert_eq!(kind("F"), None);
        assert_eq!(kind("É32"), None, "not ASCII");
        for ordinary in ["E11.9", "I10", "S06.0X1A", "G89.4", "A49.9", "Z00.00", "R45.0", "B21"] {
            assert_eq!(kind(ordinary), None, "{ordinary}");
        }
    }

    #[test]
    fn diagnoses_inside_claims_are_found() {
        let eob = json!({
            "resourceType": "ExplanationOfBenefit",
            "diagnosis": [
                {"diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]}},
                {"diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20"}]}}
            ],
            "item": [{"productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "90834"}]}}]
        });
        let reasons = assess(&eob);
        assert_eq!(
            reasons,
            [
                Reason { source: Source::Classifier, kind: Kind::SubstanceUse },
                Reason { source: Source::Classifier, kind: Kind::BehavioralHealth }
            ]
        );
    }

    #[test]
    fn other_systems() {
        assert_eq!(code_kind(RXNORM_SYSTEM, "1819"), Some(Kind::SubstanceUse));
        assert_eq!(code_kind(SNOMED_SYSTEM, "370143000"), Some(Kind::BehavioralHealth));
        assert_eq!(code_kind(LOINC_SYSTEM, "75622-1"), Some(Kind::Hiv));
        assert_eq!(code_kind(CPT_SYSTEM, "90837"), Some(Kind::BehavioralHealth));
        assert_eq!(code_kind(CPT_SYSTEM, "99213"), None);
        assert_eq!(code_kind(HCPCS_SYSTEMS[0], "H0020"), Some(Kind::BehavioralHealth));
        assert_eq!(code_kind(HCPCS_SYSTEMS[0], "G2067"), Some(Kind::SubstanceUse));
        assert_eq!(code_kind(LOINC_SYSTEM, "4548-4"), None, "HbA1c is not sensitive");
        assert_eq!(code_kind("http://example.org/local", "F32.9"), None, "codes count only in their own system");
    }

    #[test]
    fn medication_products_are_matched_by_ingredient_name() {
        let request = json!({
            "resourceType": "MedicationRequest",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM_SYSTEM, "code": "1010600",
                "display": "Buprenorphine 2 MG / Naloxone 0.5 MG Sublingual Film"}]}
        });
        assert_eq!(classifier_reasons(&request), [Reason { source: Source::Classifier, kind: Kind::SubstanceUse }]);
        assert_eq!(medication_display_kind(NDC_SYSTEM, "sertraline 50 mg tablet"), Some(Kind::BehavioralHealth));
        assert_eq!(medication_display_kind(RXNORM_SYSTEM, "lisinopril 10 MG Oral Tablet"), None);
        assert_eq!(medication_display_kind(RXNORM_SYSTEM, "METHADONE HCl 10 MG"), Some(Kind::SubstanceUse));
        assert_eq!(medication_display_kind(RXNORM_SYSTEM, "Sertralin"), None, "the whole name");
        assert_eq!(medication_display_kind(SNOMED_SYSTEM, "methadone"), None, "only medication code systems");
    }

    #[test]
    fn unlabelled_ordinary_resources_pass() {
        let condition = json!({
            "resourceType": "Condition",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]}
        });
        assert!(assess(&condition).is_empty());
        assert_eq!(Reason { source: Source::Label, kind: Kind::Hiv }.key(), "label:hiv");
    }

    #[test]
    fn a_reason_reads_back_from_its_key() {
        for source in [Source::Label, Source::Classifier] {
            for kind in Kind::ALL {
                let reason = Reason { source, kind };
                assert_eq!(Reason::from_key(&reason.key()), Some(reason));
            }
        }
        for bad in ["", "label", "label:", "guess:hiv", "label:flu"] {
            assert_eq!(Reason::from_key(bad), None, "{bad}");
        }
    }
}
