//! How members think of records, and the kinds of sensitive information.

use crate::vocabulary;

vocabulary! {
    /// How a member thinks of a record.
    pub enum Category {
        Claims = "claims",
        PriorAuthorizations = "prior_authorizations",
        Coverage = "coverage",
        Conditions = "conditions",
        Medications = "medications",
        Visits = "visits",
        Labs = "labs",
        Immunizations = "immunizations",
        Procedures = "procedures",
        Allergies = "allergies",
        Documents = "documents",
        CarePlans = "care_plans",
        /// Directory entries, Provenance, the Patient itself: care providers and record sources.
        Supporting = "supporting",
    }
}

impl Category {
    /// The kinds members count as records (everything but [`Category::Supporting`]).
    pub const RECORDS: [Category; 12] = [
        Category::Claims,
        Category::PriorAuthorizations,
        Category::Coverage,
        Category::Conditions,
        Category::Medications,
        Category::Visits,
        Category::Labs,
        Category::Immunizations,
        Category::Procedures,
        Category::Allergies,
        Category::Documents,
        Category::CarePlans,
    ];
    /// The order member pages list them in (coverage last, supporting details at the end).
    pub const MEMBER_ORDER: [Category; 13] = [
        Category::Claims,
        Category::PriorAuthorizations,
        Category::Conditions,
        Category::Medications,
        Category::Visits,
        Category::Labs,
        Category::Immunizations,
        Category::Documents,
        Category::Procedures,
        Category::Allergies,
        Category::CarePlans,
        Category::Coverage,
        Category::Supporting,
    ];

    /// The kinds staff browse a member's records by, in the order shown.
    pub const STAFF_ORDER: [Category; 10] = [
        Category::Claims,
        Category::PriorAuthorizations,
        Category::Conditions,
        Category::Medications,
        Category::Visits,
        Category::Labs,
        Category::Immunizations,
        Category::Procedures,
        Category::Documents,
        Category::Coverage,
    ];

    /// Stable machine name (stored counts, locale keys).
    pub fn key(self) -> &'static str {
        self.as_str()
    }

    pub fn from_key(key: &str) -> Option<Self> {
        key.parse().ok()
    }
}

vocabulary! {
    /// What kind of sensitive information.
    pub enum SensitiveKind {
        BehavioralHealth = "behavioral_health",
        SubstanceUse = "substance_use",
        Hiv = "hiv",
        SexualHealth = "sexual_health",
        Violence = "violence",
        /// Labelled restricted (`R`, `V`, `SPI`) without saying why.
        Restricted = "restricted",
    }
}

impl SensitiveKind {
    pub fn key(self) -> &'static str {
        self.as_str()
    }
}
