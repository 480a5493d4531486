//! What a transfer's records name but the transfer has not written: the only references of
//! its records that can dangle, when it ran from its first page.
//!
//! Checking every reference of the member's record against the store at the end costs a read
//! per reference (about 4 per resource: half a second per 100,000 resources, twice). Tracking,
//! while the pages are committed, which targets were named and which were written leaves a
//! handful of candidates to check. Written targets are kept as 128-bit hashes (16 bytes
//! each, whatever the id's length); only targets named and not (yet) written keep their names.
//! A transfer resumed after a restart has not seen its earlier pages, so it has no tracker
//! and checks every reference instead ([`baton_store::Store::dangling_references`]).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use baton_store::ResourceWrite;

#[derive(Debug, Default)]
pub struct NamedTargets {
    written: HashSet<u128>,
    /// Named by a committed record, not written by this transfer: `(type, id)`.
    unwritten: HashMap<u128, (String, String)>,
}

impl NamedTargets {
    /// Records a page about to be committed: what it writes, then what its records name.
    /// Returns the targets it named first that are not written yet.
    pub fn track(&mut self, resources: &[ResourceWrite]) -> Vec<(String, String)> {
        for write in resources {
            let key = key(&write.resource_type, &write.id);
            self.written.insert(key);
            self.unwritten.remove(&key);
        }
        let mut new = vec![];
        for reference in resources.iter().flat_map(|w| &w.references) {
            let key = key(&reference.target_type, &reference.target_id);
            if !self.written.contains(&key)
                && let std::collections::hash_map::Entry::Vacant(entry) = self.unwritten.entry(key)
            {
                let target = (reference.target_type.clone(), reference.target_id.clone());
                new.push(target.clone());
                entry.insert(target);
            }
        }
        new
    }

    /// A resource this transfer wrote is gone again (purged): what names it may dangle now.
    pub fn removed(&mut self, resource_type: &str, id: &str) {
        let key = key(resource_type, id);
        self.written.remove(&key);
        self.unwritten.insert(key, (resource_type.to_owned(), id.to_owned()));
    }

    /// Targets named and not written by this transfer: they may exist from before (the
    /// member's own Patient, an earlier transfer) or not at all — the store tells which.
    pub fn candidates(&self) -> Vec<(String, String)> {
        let mut candidates: Vec<(String, String)> = self.unwritten.values().cloned().collect();
        candidates.sort();
        candidates
    }
}

/// Two independent 64-bit SipHashes of `type/id`: a collision among a million targets has
/// odds of about one in 10^26.
pub(crate) fn key(resource_type: &str, id: &str) -> u128 {
    let half = |salt: u8| {
        let mut hasher = DefaultHasher::new();
        salt.hash(&mut hasher);
        resource_type.hash(&mut hasher);
        id.hash(&mut hasher);
        hasher.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

#[cfg(test)]
mod tests {
    use baton_store::IndexedReference;

    use super::*;

    fn write(resource_type: &str, id: &str, targets: &[&str]) -> ResourceWrite {
        ResourceWrite {
            resource_type: resource_type.into(),
            id: id.into(),
            member_account: None,
            patient_id: None,
            source_system: None,
            source_id: None,
            security: vec![],
            sensitive: false,
            date_start: None,
            date_end: None,
            identifiers: vec![],
            references: targets
                .iter()
                .map(|t| {
                    let (target_type, target_id) = t.split_once('/').unwrap();
                    IndexedReference {
                        path: "ref".into(),
                        target_type: target_type.into(),
                        target_id: target_id.into(),
                    }
                })
                .collect(),
            body: serde_json::json!({}),
        }
    }

    #[test]
    fn only_targets_never_written_are_candidates() {
        let mut named = NamedTargets::default();
        // Named before it is written (a later page), after (an earlier one), in the same page,
        // and never.
        let pair = |t: &str, id: &str| (t.to_owned(), id.to_owned());
        let first = named.track(&[write("Provenance", "p1", &["Claim/later", "Patient/x", "Organization/never"])]);
        assert_eq!(first, [pair("Claim", "later"), pair("Patient", "x"), pair("Organization", "never")]);
        let second = named.track(&[write("Patient", "x", &[]), write("Claim", "same", &["Patient/x", "Coverage/c"])]);
        assert_eq!(second, [pair("Coverage", "c")], "named once, and not what the page writes");
        let third = named.track(&[write("Coverage", "c", &["Claim/same"]), write("Claim", "later", &[])]);
        assert!(third.is_empty());
        assert_eq!(named.candidates(), [pair("Organization", "never")]);
    }

    #[test]
    fn a_purged_resource_becomes_a_candidate_again() {
        let mut named = NamedTargets::default();
        named.track(&[write("Organization", "clinic", &[]), write("Encounter", "e", &["Organization/clinic"])]);
        assert!(named.candidates().is_empty());
        named.removed("Organization", "clinic");
        assert_eq!(named.candidates(), [("Organization".to_owned(), "clinic".to_owned())]);
        // Written again (a resolve batch): no longer a candidate.
        named.track(&[write("Organization", "clinic", &[])]);
        assert!(named.candidates().is_empty());
    }

    #[test]
    fn keys_separate_type_from_id() {
        assert_ne!(key("Claim", "1"), key("Clai", "m1"));
        assert_ne!(key("Claim", "1"), key("Claim", "2"));
        assert_eq!(key("Claim", "1"), key("Claim", "1"));
    }
}
