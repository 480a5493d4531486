//! Searchset Bundles, written from stored JSON text without re-parsing every resource.

use serde::Serialize;
use serde_json::value::RawValue;

/// Why an entry is in a searchset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    Match,
    Include,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    #[serde(rename = "fullUrl")]
    pub full_url: String,
    pub resource: Box<RawValue>,
    pub search: EntrySearch,
}

#[derive(Debug, Serialize)]
pub struct EntrySearch {
    pub mode: SearchMode,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub relation: &'static str,
    pub url: String,
}

/// A `Bundle` of type `searchset`.
#[derive(Debug, Serialize)]
pub struct Searchset {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    bundle_type: &'static str,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    pub link: Vec<Link>,
    pub entry: Vec<Entry>,
}

impl Searchset {
    pub fn new(timestamp: String, total: Option<u64>) -> Self {
        Self {
            resource_type: "Bundle",
            bundle_type: "searchset",
            timestamp,
            total,
            link: Vec::new(),
            entry: Vec::new(),
        }
    }

    pub fn link(&mut self, relation: &'static str, url: String) {
        self.link.push(Link { relation, url });
    }

    /// Adds a resource given as JSON text (as stored). Fails only if the text is not JSON.
    pub fn push(&mut self, full_url: String, json: String, mode: SearchMode) -> Result<(), serde_json::Error> {
        let resource = RawValue::from_string(json)?;
        self.entry.push(Entry { full_url, resource, search: EntrySearch { mode } });
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"resourceType":"Bundle","type":"searchset"}"#.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_searchset_with_stored_text_verbatim() {
        let mut bundle = Searchset::new("2026-01-01T00:00:00.000Z".into(), Some(2));
        bundle.link("self", "https://x/fhir/Condition?patient=1".into());
        bundle
            .push(
                "https://x/fhir/Condition/c1".into(),
                r#"{"resourceType":"Condition","id":"c1"}"#.into(),
                SearchMode::Match,
            )
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(&bundle.to_json()).unwrap();
        assert_eq!(json["resourceType"], "Bundle");
        assert_eq!(json["type"], "searchset");
        assert_eq!(json["total"], 2);
        assert_eq!(json["link"][0]["relation"], "self");
        assert_eq!(json["entry"][0]["resource"]["id"], "c1");
        assert_eq!(json["entry"][0]["search"]["mode"], "match");
        assert!(bundle.push("u".into(), "not json".into(), SearchMode::Include).is_err());
    }
}
