//! What a transfer has done so far (stored with each page; shown to the member and staff).

use std::collections::BTreeMap;

use baton_vocab::Phase;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// Progress written before phases were typed said `""` for a transfer not yet planned.
    #[serde(deserialize_with = "phase_or_plan")]
    pub phase: Phase,
    /// How many resources the previous plan said it has (Bundle totals), when it said.
    pub expected: Option<u64>,
    /// Per resource type.
    pub types: BTreeMap<String, TypeCounts>,
    /// Stored records per member-facing category (claims, conditions…).
    pub categories: BTreeMap<String, u64>,
    /// Earliest and latest date of stored records per category (milliseconds).
    pub category_dates: BTreeMap<String, (i64, i64)>,
    /// Not stored because the member excluded sensitive data, per reason (e.g. `label:substance_use`).
    pub excluded: BTreeMap<String, u64>,
    /// Not stored because they could not be (counted; reasons are in the rejection log).
    pub rejected: u64,
    /// Types the previous plan would not give (403), or does not offer.
    pub not_permitted: Vec<String>,
    pub not_supported: Vec<String>,
    pub pages: u64,
    /// References fetched afterwards because a record pointed at them.
    pub resolved_references: u64,
    /// References removed because their target was withheld or could not be found.
    pub removed_references: u64,
    /// References withheld as they came because they named something other than the previous
    /// plan's own resources (another server, this plan's own records).
    #[serde(default)]
    pub foreign_references: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCounts {
    pub received: u64,
    pub stored: u64,
    pub excluded: u64,
    pub rejected: u64,
}

impl Progress {
    pub fn received(&self) -> u64 {
        self.types.values().map(|t| t.received).sum()
    }

    /// Everything stored: records, and what supports them (see [`Progress::records`]).
    pub fn stored(&self) -> u64 {
        self.types.values().map(|t| t.stored).sum()
    }

    /// Records, as every screen counts them: the member's claims, conditions, medicines… — not
    /// the care providers and medicines they name, the record sources (Provenance) or the
    /// member's Patient, which [`Progress::supporting`] counts apart.
    pub fn records(&self) -> u64 {
        baton_vocab::Category::RECORDS.iter().map(|c| self.categories.get(c.key()).copied().unwrap_or(0)).sum()
    }

    /// Stored alongside the records: care providers, record sources, the member's Patient.
    pub fn supporting(&self) -> u64 {
        self.stored().saturating_sub(self.records())
    }

    pub fn excluded_total(&self) -> u64 {
        self.excluded.values().sum()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn from_json(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_default()
    }
}

fn phase_or_plan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Phase, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(text.parse().unwrap_or_default())
}
