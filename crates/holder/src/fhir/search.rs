//! `GET [base]/{type}?…`: searches within the token's patient compartment, paged with stable
//! `next` links, with `_include` and `_revinclude=Provenance:target`.

use std::collections::{BTreeSet, HashSet};

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use baton_fhir::bundle::{SearchMode, Searchset};
use baton_fhir::exchange::{is_compartment_type, is_exchange_type};
use baton_store::{ResourceQuery, StoredResource, Timestamp};
use serde_json::Value;

use super::access::Access;
use super::params::{self, Cursor, Search};
use super::{FhirError, fhir_json};
use crate::Holder;

/// The most `_revinclude`d Provenance per page.
const MAX_PROVENANCE_PER_PAGE: u32 = 10_000;

pub async fn search(
    State(holder): State<Holder>,
    Path(resource_type): Path<String>,
    access: Access,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    if !is_exchange_type(&resource_type) {
        return Err(FhirError::not_found(format!("{resource_type} is not a resource type this server offers")));
    }
    access.require_search(&resource_type)?;
    let pairs = query_pairs(raw.as_deref())?;
    let search = params::parse(&resource_type, &pairs)?;
    let mut query = access.visible(&resource_type);
    match (&access.patient_id, &search.patient) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(FhirError::forbidden("this token is for another patient"));
        }
        // The plan's own API: `patient=` narrows to that patient's compartment.
        (None, Some(asked)) => {
            if !is_compartment_type(&resource_type) {
                return Err(FhirError::bad_parameter(format!("{resource_type} has no patient search parameter")));
            }
            query.patient_id = Some(asked.clone());
        }
        _ => {}
    }
    apply(&mut query, &search);
    let empty = search.dates.is_empty_range() || search.last_updated.is_empty_range() || search.count == 0;

    let snapshot = match search.cursor {
        Some(cursor) => cursor.snapshot,
        None => holder.store.max_resource_seq().await?,
    };
    query.snapshot_seq = Some(snapshot);
    let total = if search.dates.is_empty_range() || search.last_updated.is_empty_range() {
        0
    } else if let Some(cursor) = search.cursor {
        cursor.total
    } else {
        holder.store.count_resources(&query).await?
    };
    let (matches, next) = if empty {
        (vec![], None)
    } else {
        query.after_seq = search.cursor.map(|c| c.after);
        query.limit = search.count;
        let page = holder.store.search_resources(&query).await?;
        (page.resources, page.next_after_seq.map(|after| Cursor { after, snapshot, total }))
    };

    let base = &access.base;
    let mut bundle = Searchset::new(Timestamp::now().to_fhir_instant(), Some(total));
    bundle.link("self", page_url(base, &resource_type, &pairs, search.cursor));
    if let Some(next) = next {
        bundle.link("next", page_url(base, &resource_type, &pairs, Some(next)));
    }
    let included = includes(&holder, &access, &resource_type, &search, &matches).await?;
    let provenance =
        if search.revinclude_provenance { provenance_for(&holder, &access, &matches).await? } else { vec![] };
    for (resource, mode) in matches
        .into_iter()
        .map(|r| (r, SearchMode::Match))
        .chain(included.into_iter().chain(provenance).map(|r| (r, SearchMode::Include)))
    {
        let full_url = format!("{base}/{}/{}", resource.resource_type, resource.id);
        bundle.push(full_url, access.shown(&resource.resource_type, resource.body), mode).map_err(FhirError::server)?;
    }
    Ok(fhir_json(bundle.to_json()))
}

pub(super) fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>, FhirError> {
    serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|_| FhirError::bad_parameter("the query string is malformed"))
}

fn apply(query: &mut ResourceQuery, search: &Search) {
    query.ids = search.ids.clone();
    query.identifier = search.identifier.clone();
    query.last_updated_from = search.last_updated.from();
    query.last_updated_before = search.last_updated.before();
    query.date_from = search.dates.from();
    query.date_to = search.dates.to();
    if !search.targets.is_empty() {
        query.reference_path = Some("target".into());
        query.references_to = search.targets.clone();
    }
}

/// This search's URL with `_cursor` set to `cursor` (or removed).
pub(super) fn page_url(base: &str, path: &str, pairs: &[(String, String)], cursor: Option<Cursor>) -> String {
    let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "_cursor").cloned().collect();
    if let Some(cursor) = cursor {
        kept.push(("_cursor".into(), cursor.encode()));
    }
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    if query.is_empty() { format!("{base}/{path}") } else { format!("{base}/{path}?{query}") }
}

/// The resources `_include` asks for, among those the token may see and read.
async fn includes(
    holder: &Holder,
    access: &Access,
    resource_type: &str,
    search: &Search,
    matches: &[StoredResource],
) -> Result<Vec<StoredResource>, FhirError> {
    if search.includes.is_empty() || matches.is_empty() {
        return Ok(vec![]);
    }
    let mut targets: BTreeSet<(String, String)> = BTreeSet::new();
    for resource in matches {
        let Ok(body) = serde_json::from_str::<Value>(&resource.body) else { continue };
        if search.includes.iter().any(|p| p == "patient")
            && let Some(patient) = &resource.patient_id
        {
            targets.insert(("Patient".into(), patient.clone()));
        }
        let facts = baton_fhir::index::facts(resource_type, &body, &holder.urls.fhir_base);
        for (param, target_type, target_id) in facts.references {
            if search.includes.contains(&param) {
                targets.insert((target_type, target_id));
            }
        }
    }
    let already: HashSet<(&str, &str)> = matches.iter().map(|r| (r.resource_type.as_str(), r.id.as_str())).collect();
    fetch_visible(holder, access, targets.into_iter().filter(|(t, i)| !already.contains(&(t.as_str(), i.as_str()))))
        .await
}

/// Reads `(type, id)`s the token may see (and whose types it may read).
pub(super) async fn fetch_visible(
    holder: &Holder,
    access: &Access,
    targets: impl Iterator<Item = (String, String)>,
) -> Result<Vec<StoredResource>, FhirError> {
    let mut by_type: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (target_type, id) in targets {
        by_type.entry(target_type).or_default().push(id);
    }
    let mut found = vec![];
    for (target_type, ids) in by_type {
        if !access.scopes.can_read(&target_type) {
            continue;
        }
        for chunk in ids.chunks(500) {
            let mut query = access.visible(&target_type);
            query.ids = chunk.to_vec();
            query.limit = chunk.len() as u32;
            found.extend(holder.store.search_resources(&query).await?.resources);
        }
    }
    Ok(found)
}

/// The Provenance resources that target `matches` (`_revinclude=Provenance:target`).
pub(super) async fn provenance_for(
    holder: &Holder,
    access: &Access,
    matches: &[StoredResource],
) -> Result<Vec<StoredResource>, FhirError> {
    if matches.is_empty() || !access.scopes.can_read("Provenance") {
        return Ok(vec![]);
    }
    let mut found = vec![];
    for chunk in matches.chunks(200) {
        let mut query = access.visible("Provenance");
        query.reference_path = Some("target".into());
        query.references_to = chunk.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
        query.limit = MAX_PROVENANCE_PER_PAGE;
        for resource in holder.store.search_resources(&query).await?.resources {
            if !found.iter().any(|f: &StoredResource| f.seq == resource.seq) {
                found.push(resource);
            }
        }
    }
    Ok(found)
}
