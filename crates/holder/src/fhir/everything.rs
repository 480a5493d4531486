//! `GET [base]/Patient/{id}/$everything` with `start`, `end`, `_since`, `_type`, `_count`:
//! the patient's compartment, then the directory entries it refers to, paged.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use baton_fhir::bundle::{SearchMode, Searchset};
use baton_fhir::exchange::{EXCHANGE_TYPES, SHARED_TYPES, is_compartment_type, is_exchange_type};
use baton_store::{ResourceQuery, Timestamp};

use super::access::Access;
use super::params::{self, Bounds, Cursor};
use super::search::query_pairs;
use super::{FhirError, fhir_json};
use crate::Holder;

/// Which part of `$everything` a page is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Compartment,
    Directory,
}

pub async fn everything(
    State(holder): State<Holder>,
    Path(id): Path<String>,
    access: Access,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    match &access.patient_id {
        Some(own) if *own != id => return Err(FhirError::forbidden("this token is for another patient")),
        Some(_) => {}
        // The plan's own API: any patient it holds.
        None => {
            let exists = baton_fhir::is_valid_id(&id)
                && holder.store.read_resource("Patient", &id).await?.is_some_and(|p| p.deleted_at.is_none());
            if !exists {
                return Err(FhirError::not_found(format!("Patient/{id} is not known")));
            }
        }
    }
    let patient_id = id.clone();
    let pairs = query_pairs(raw.as_deref())?;
    let mut care = Bounds::default();
    let mut since = None;
    let mut types: Option<Vec<String>> = None;
    let mut count = params::DEFAULT_COUNT;
    let mut cursor: Option<(Phase, Cursor)> = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "start" => care.add("start", &format!("ge{value}"))?,
            "end" => care.add("end", &format!("le{value}"))?,
            "_since" => {
                let at = Timestamp::parse_rfc3339(value)
                    .ok_or_else(|| FhirError::bad_parameter("_since must be an instant (e.g. 2024-01-01T00:00:00Z)"))?;
                since = Some(at);
            }
            "_type" => {
                let list: Vec<String> =
                    value.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
                if let Some(unknown) = list.iter().find(|t| !is_exchange_type(t)) {
                    return Err(FhirError::bad_parameter(format!("_type: {unknown} is not a type this server offers")));
                }
                types.get_or_insert_with(Vec::new).extend(list);
            }
            "_count" => count = params::count(value)?,
            "_format" => params::format(value)?,
            "_cursor" => {
                let (phase, rest) =
                    value.split_once('.').ok_or_else(|| FhirError::bad_parameter("_cursor is not valid"))?;
                let phase = match phase {
                    "c" => Phase::Compartment,
                    "d" => Phase::Directory,
                    _ => return Err(FhirError::bad_parameter("_cursor is not valid")),
                };
                cursor = Some((phase, Cursor::parse(rest)?));
            }
            other => return Err(FhirError::bad_parameter(format!("$everything does not take {other}"))),
        }
    }
    if care.is_empty_range() {
        return Err(FhirError::unprocessable("start is after end"));
    }
    // Only what the token may see: types its scopes allow (PDex §pdex-213).
    let wanted: Vec<String> = match types {
        Some(list) => list,
        None => EXCHANGE_TYPES.iter().map(|t| (*t).to_owned()).collect(),
    };
    let allowed: Vec<String> =
        wanted.into_iter().filter(|t| access.scopes.can_search(t) || access.scopes.can_read(t)).collect();
    let compartment_types: Vec<String> = allowed.iter().filter(|t| is_compartment_type(t)).cloned().collect();
    let directory_types: Vec<String> = allowed.iter().filter(|t| SHARED_TYPES.contains(&t.as_str())).cloned().collect();

    let snapshot = match cursor {
        Some((_, c)) => c.snapshot,
        None => holder.store.max_resource_seq().await?,
    };
    let exclude_sensitive = !access.include_sensitive;
    let compartment = ResourceQuery {
        resource_types: compartment_types.clone(),
        patient_id: Some(patient_id.clone()),
        date_from: care.from(),
        date_to: care.to(),
        include_undated: true,
        last_updated_from: since,
        exclude_sensitive,
        snapshot_seq: Some(snapshot),
        ..Default::default()
    };
    let directory = ResourceQuery {
        resource_types: directory_types.clone(),
        no_compartment: true,
        referenced_by_patient: Some(patient_id.clone()),
        last_updated_from: since,
        exclude_sensitive,
        snapshot_seq: Some(snapshot),
        ..Default::default()
    };
    let count_of = |query: &ResourceQuery, types: &[String]| {
        let store = holder.store.clone();
        let query = query.clone();
        let empty = types.is_empty();
        async move { if empty { Ok(0) } else { store.count_resources(&query).await } }
    };
    // Counted on the first page only; later pages carry the total in their cursor.
    let (compartment_total, directory_total, total) = match cursor {
        Some((_, c)) => (None, None, c.total),
        None => {
            let c = count_of(&compartment, &compartment_types).await?;
            let d = count_of(&directory, &directory_types).await?;
            (Some(c), Some(d), c + d)
        }
    };

    let mut entries = vec![];
    let mut next = None;
    if count > 0 {
        let (phase, after) = match cursor {
            Some((phase, c)) => (phase, Some(c.after)),
            None => (Phase::Compartment, None),
        };
        let at = |after| Cursor { after, snapshot, total };
        let mut remaining = count;
        if phase == Phase::Compartment && compartment_total != Some(0) && !compartment_types.is_empty() {
            let page = holder
                .store
                .search_resources(&ResourceQuery { after_seq: after, limit: remaining, ..compartment.clone() })
                .await?;
            remaining -= page.resources.len() as u32;
            next = page.next_after_seq.map(|a| ("c", at(a)));
            entries.extend(page.resources);
        }
        if next.is_none() && !directory_types.is_empty() {
            let after = if phase == Phase::Directory { after } else { None };
            if remaining > 0 {
                if directory_total != Some(0) {
                    let page = holder
                        .store
                        .search_resources(&ResourceQuery { after_seq: after, limit: remaining, ..directory.clone() })
                        .await?;
                    next = page.next_after_seq.map(|a| ("d", at(a)));
                    entries.extend(page.resources);
                }
            } else if phase == Phase::Compartment {
                // The compartment ended exactly on this page: the directory starts on the next one.
                let d = match directory_total {
                    Some(d) => d,
                    None => count_of(&directory, &directory_types).await?,
                };
                if d > 0 {
                    next = Some(("d", at(0)));
                }
            }
        }
    }

    let base = &access.base;
    let path = format!("Patient/{id}/$everything");
    let mut bundle = Searchset::new(Timestamp::now().to_fhir_instant(), Some(total));
    let with_cursor = |phase: &str, c: Cursor| -> String {
        let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "_cursor").cloned().collect();
        kept.push(("_cursor".into(), format!("{phase}.{}", c.encode())));
        format!("{base}/{path}?{}", serde_urlencoded::to_string(&kept).unwrap_or_default())
    };
    let here = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    bundle.link("self", if here.is_empty() { format!("{base}/{path}") } else { format!("{base}/{path}?{here}") });
    if let Some((phase, c)) = next {
        bundle.link("next", with_cursor(phase, c));
    }
    for resource in entries {
        let full_url = format!("{base}/{}/{}", resource.resource_type, resource.id);
        bundle
            .push(full_url, access.shown(&resource.resource_type, resource.body), SearchMode::Match)
            .map_err(FhirError::server)?;
    }
    Ok(fhir_json(bundle.to_json()))
}
