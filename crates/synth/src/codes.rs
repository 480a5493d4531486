//! Codes used by the generator: real code systems, plausible everyday codes.

pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const CPT: &str = "http://www.ama-assn.org/go/cpt";
pub const HCPCS: &str = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets";
pub const CDT: &str = "http://www.ada.org/cdt";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
pub const NDC: &str = "http://hl7.org/fhir/sid/ndc";

/// A condition in a member's story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Diabetes,
    Hypertension,
    Hyperlipidemia,
    Asthma,
    /// Behavioral health: major depressive disorder.
    Depression,
    /// Behavioral health: generalized anxiety disorder.
    Anxiety,
    /// Substance use: opioid dependence.
    OpioidUseDisorder,
}

/// How a condition shows up in a record.
pub struct Profile {
    pub icd10: &'static str,
    pub icd10_display: &'static str,
    pub snomed: &'static str,
    pub snomed_display: &'static str,
    /// A medication for it: RxNorm SCD and display.
    pub medication: Option<(&'static str, &'static str)>,
    /// A follow-up test: LOINC code, display, unit, typical value range.
    pub observation: Option<(&'static str, &'static str, &'static str, f64, f64)>,
    /// The visit procedure code (CPT or HCPCS) and display.
    pub visit: (&'static str, &'static str, &'static str),
    /// Sensitive care (behavioral health or substance use), and the label that marks it.
    pub sensitive_label: Option<&'static str>,
    /// A prior authorization typical for it: code system, code, display.
    pub prior_authorization: Option<(&'static str, &'static str, &'static str)>,
}

impl Condition {
    pub fn profile(self) -> Profile {
        match self {
            Condition::Diabetes => Profile {
                icd10: "E11.9",
                icd10_display: "Type 2 diabetes mellitus without complications",
                snomed: "44054006",
                snomed_display: "Diabetes mellitus type 2",
                medication: Some(("861007", "metformin hydrochloride 500 MG Oral Tablet")),
                observation: Some(("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 6.1, 8.4)),
                visit: (CPT, "99214", "Office or other outpatient visit, established patient, 30-39 minutes"),
                sensitive_label: None,
                prior_authorization: Some((HCPCS, "E2103", "Non-adjunctive continuous glucose monitor")),
            },
            Condition::Hypertension => Profile {
                icd10: "I10",
                icd10_display: "Essential (primary) hypertension",
                snomed: "38341003",
                snomed_display: "Hypertensive disorder",
                medication: Some(("314076", "lisinopril 10 MG Oral Tablet")),
                observation: Some(("8480-6", "Systolic blood pressure", "mm[Hg]", 118.0, 152.0)),
                visit: (CPT, "99213", "Office or other outpatient visit, established patient, 20-29 minutes"),
                sensitive_label: None,
                prior_authorization: None,
            },
            Condition::Hyperlipidemia => Profile {
                icd10: "E78.5",
                icd10_display: "Hyperlipidemia, unspecified",
                snomed: "55822004",
                snomed_display: "Hyperlipidemia",
                medication: Some(("617312", "atorvastatin 10 MG Oral Tablet")),
                observation: Some(("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 160.0, 245.0)),
                visit: (CPT, "99213", "Office or other outpatient visit, established patient, 20-29 minutes"),
                sensitive_label: None,
                prior_authorization: None,
            },
            Condition::Asthma => Profile {
                icd10: "J45.909",
                icd10_display: "Unspecified asthma, uncomplicated",
                snomed: "195967001",
                snomed_display: "Asthma",
                medication: Some(("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler")),
                observation: Some(("19926-5", "FEV1/FVC", "%", 62.0, 81.0)),
                visit: (CPT, "99213", "Office or other outpatient visit, established patient, 20-29 minutes"),
                sensitive_label: None,
                prior_authorization: Some((CPT, "94010", "Spirometry")),
            },
            Condition::Depression => Profile {
                icd10: "F32.1",
                icd10_display: "Major depressive disorder, single episode, moderate",
                snomed: "370143000",
                snomed_display: "Major depressive disorder",
                medication: Some(("312940", "sertraline 50 MG Oral Tablet")),
                observation: Some((
                    "44261-6",
                    "Patient Health Questionnaire 9 item (PHQ-9) total score",
                    "{score}",
                    5.0,
                    19.0,
                )),
                visit: (CPT, "90834", "Psychotherapy, 45 minutes with patient"),
                sensitive_label: Some("PSY"),
                prior_authorization: Some((
                    HCPCS,
                    "H0035",
                    "Mental health partial hospitalization, treatment, less than 24 hours",
                )),
            },
            Condition::Anxiety => Profile {
                icd10: "F41.1",
                icd10_display: "Generalized anxiety disorder",
                snomed: "21897009",
                snomed_display: "Generalized anxiety disorder",
                medication: Some(("312940", "sertraline 50 MG Oral Tablet")),
                observation: Some((
                    "70274-6",
                    "Generalized anxiety disorder 7 item (GAD-7) total score",
                    "{score}",
                    4.0,
                    16.0,
                )),
                visit: (CPT, "90832", "Psychotherapy, 30 minutes with patient"),
                sensitive_label: Some("BH"),
                prior_authorization: None,
            },
            Condition::OpioidUseDisorder => Profile {
                icd10: "F11.20",
                icd10_display: "Opioid dependence, uncomplicated",
                snomed: "75544000",
                snomed_display: "Opioid dependence",
                medication: Some(("1010600", "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film")),
                observation: None,
                visit: (HCPCS, "H0020", "Alcohol and/or drug services; methadone administration and/or service"),
                sensitive_label: Some("42CFRPart2"),
                prior_authorization: Some((HCPCS, "H0010", "Alcohol and/or drug services; sub-acute detoxification")),
            },
        }
    }

    pub fn is_sensitive(self) -> bool {
        self.profile().sensitive_label.is_some()
    }
}

pub const GIVEN_NAMES: &[&str] = &[
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas", "Mia", "Amara", "Kenji",
    "Priya", "Daniel", "Grace", "Samuel", "Chloe", "Diego", "Fatima",
];

pub const FAMILY_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Nguyen",
    "Rodriguez",
    "Martinez",
    "Davis",
    "Hernandez",
    "Kim",
    "Patel",
    "Okafor",
    "Thompson",
    "Rivera",
    "Chen",
    "Walker",
    "Young",
    "Allen",
    "Scott",
];

/// Provider organizations and practitioners every record draws on.
pub const PROVIDER_ORGANIZATIONS: &[(&str, &str, &str)] = &[
    ("prairie-family-medicine", "Prairie Family Medicine", "1518971932"),
    ("lakeside-hospital", "Lakeside General Hospital", "1669423875"),
    ("riverside-behavioral", "Riverside Behavioral Health Center", "1336279412"),
    ("corner-pharmacy", "Corner Street Pharmacy", "1093812476"),
    ("bright-smile-dental", "Bright Smile Dental", "1457392216"),
];

pub const PRACTITIONERS: &[(&str, &str, &str, &str)] = &[
    ("dr-okafor", "Adaeze", "Okafor", "1912345678"),
    ("dr-lindqvist", "Erik", "Lindqvist", "1823456781"),
    ("dr-ramos", "Lucia", "Ramos", "1734567892"),
    ("dr-chen", "Wei", "Chen", "1645678903"),
    ("dr-haddad", "Samir", "Haddad", "1556789014"),
];
