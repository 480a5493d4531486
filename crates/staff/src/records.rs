//! What Baton holds about a member, by kind of record, with where each came from.
//!
//! Sensitive records (labelled or classified when stored) are listed without their content
//! unless the caller says they were revealed: the title, dates and sources of a hidden item
//! never leave the server.

use std::collections::HashMap;

use baton_fhir::exchange::{Category, category_of};
use baton_store::{AccountId, ResourceQuery, Store, StoreError, StoredResource};
use baton_vocab::views::staff::{RecordItem, RecordSource};
use serde_json::Value;

/// Items listed per kind of record (a member with more sees the newest first and a count).
pub const LIMIT: u32 = 500;

/// The kinds staff browse, in the order shown.
pub const KINDS: [Category; 10] = Category::STAFF_ORDER;

/// A member's records of one kind, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub total: u64,
    /// Newest first, at most [`LIMIT`]; the plan each came from as its FHIR base.
    pub items: Vec<RecordItem>,
}

/// Lists the member's records of `category`. `revealed(type, id)` says which sensitive ones
/// the caller may see in full.
pub async fn of_member(
    store: &Store,
    member: AccountId,
    category: Category,
    base: &str,
    revealed: impl Fn(&str, &str) -> bool,
) -> Result<Kind, StoreError> {
    let query = ResourceQuery {
        resource_types: baton_fhir::exchange::resource_types(category).iter().map(|t| (*t).to_owned()).collect(),
        member_account: Some(member),
        limit: 10_000,
        ..Default::default()
    };
    // EOBs are claims or prior authorizations: read them, then keep the asked-for kind.
    let mut matching: Vec<(StoredResource, Value)> = Vec::new();
    let mut page = store.search_resources(&query).await?;
    loop {
        for resource in page.resources.drain(..) {
            if resource.deleted_at.is_some() {
                continue;
            }
            let Ok(body) = serde_json::from_str::<Value>(&resource.body) else { continue };
            if category_of(&resource.resource_type, &body) == category {
                matching.push((resource, body));
            }
        }
        let Some(after) = page.next_after_seq else { break };
        page = store
            .search_resources(&ResourceQuery {
                after_seq: Some(after),
                snapshot_seq: Some(page.snapshot_seq),
                ..query.clone()
            })
            .await?;
    }
    let total = matching.len() as u64;
    let mut dated: Vec<(Option<i64>, StoredResource, Value)> = matching
        .into_iter()
        .map(|(resource, body)| {
            let date = baton_fhir::index::facts(&resource.resource_type, &body, base).dates.map(|r| r.start);
            (date, resource, body)
        })
        .collect();
    dated.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.seq.cmp(&a.1.seq)));
    dated.truncate(LIMIT as usize);

    let visible: Vec<(String, String)> = dated
        .iter()
        .filter(|(_, r, _)| !r.sensitive || revealed(&r.resource_type, &r.id))
        .map(|(_, r, _)| (r.resource_type.clone(), r.id.clone()))
        .collect();
    let sources = provenance_of(store, &visible, &revealed).await?;
    let items = dated
        .into_iter()
        .map(|(date, resource, body)| {
            let hidden = resource.sensitive && !revealed(&resource.resource_type, &resource.id);
            let key = format!("{}/{}", resource.resource_type, resource.id);
            if hidden {
                return RecordItem {
                    resource_type: resource.resource_type,
                    id: resource.id,
                    sensitive: true,
                    hidden: true,
                    title: None,
                    date: None,
                    from: None,
                    sources: vec![],
                };
            }
            RecordItem {
                title: Some(baton_records::summary::title(&body)),
                date: date.map(baton_fhir::datetime::format_date),
                sources: sources.get(&key).cloned().unwrap_or_default(),
                resource_type: resource.resource_type,
                id: resource.id,
                sensitive: resource.sensitive,
                hidden: false,
                from: resource.source_system,
            }
        })
        .collect();
    Ok(Kind { total, items })
}

/// Provenance by the `Type/id` each one targets; a sensitive Provenance (it names a sensitive
/// record too) only when revealed — its agents and date would say who cared for what.
async fn provenance_of(
    store: &Store,
    targets: &[(String, String)],
    revealed: &impl Fn(&str, &str) -> bool,
) -> Result<HashMap<String, Vec<RecordSource>>, StoreError> {
    let mut by_target: HashMap<String, Vec<RecordSource>> = HashMap::new();
    for chunk in targets.chunks(200) {
        let page = store
            .search_resources(&ResourceQuery {
                resource_types: vec!["Provenance".into()],
                references_to: chunk.to_vec(),
                reference_path: Some("target".into()),
                limit: 1000,
                ..Default::default()
            })
            .await?;
        for provenance in page.resources {
            if provenance.sensitive && !revealed(&provenance.resource_type, &provenance.id) {
                continue;
            }
            let Ok(body) = serde_json::from_str::<Value>(&provenance.body) else { continue };
            let source = RecordSource {
                provenance_id: provenance.id.clone(),
                recorded: body.get("recorded").and_then(Value::as_str).map(|r| r.chars().take(10).collect()),
                activity: body
                    .pointer("/activity/coding/0/display")
                    .or_else(|| body.pointer("/activity/coding/0/code"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                agents: body
                    .get("agent")
                    .and_then(Value::as_array)
                    .map(|agents| {
                        agents
                            .iter()
                            .filter_map(|a| a.pointer("/who/display").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            for target in body.get("target").and_then(Value::as_array).into_iter().flatten() {
                if let Some(reference) = target.get("reference").and_then(Value::as_str) {
                    let entry = by_target.entry(reference.to_owned()).or_default();
                    // Each transfer adds its custodian Provenance: the same agents on the same
                    // day say nothing new.
                    let same = |s: &RecordSource| {
                        s.provenance_id == source.provenance_id
                            || (s.agents == source.agents && s.recorded == source.recorded)
                    };
                    if !entry.iter().any(same) {
                        entry.push(source.clone());
                    }
                }
            }
        }
    }
    Ok(by_target)
}
