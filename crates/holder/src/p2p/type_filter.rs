//! `_typeFilter` on `$davinci-data-export` (Bulk Data, PDex §pdex-180/181): one search per
//! type, `Type?date-param=…&_lastUpdated=…`, with the date parameters this plan indexes for that
//! type (the same ones its searches take). Anything else is refused with an OperationOutcome —
//! never answered unfiltered.

use std::collections::BTreeMap;

use baton_fhir::exchange::is_exchange_type;
use serde::{Deserialize, Serialize};

use crate::fhir::FhirError;
use crate::fhir::params;

/// The date bounds one type's filter sets (inclusive, milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeFilter {
    pub date_from: Option<i64>,
    pub date_to: Option<i64>,
    pub updated_from: Option<i64>,
    pub updated_to: Option<i64>,
}

/// Reads one `_typeFilter` value into `filters`: a second filter for the same type is refused
/// (Bulk Data would OR them; this plan does not).
pub fn add(filters: &mut BTreeMap<String, TypeFilter>, value: &str) -> Result<(), FhirError> {
    let refused = |why: String| FhirError::bad_parameter(format!("_typeFilter {value:?}: {why}"));
    let (resource_type, query) =
        value.split_once('?').ok_or_else(|| refused("it must be Type?search-parameters".into()))?;
    if !is_exchange_type(resource_type) {
        return Err(refused(format!("{resource_type} is not a type this plan exports")));
    }
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let dates = baton_fhir::index::date_parameters(resource_type);
    if let Some((name, _)) = pairs.iter().find(|(name, _)| name != "_lastUpdated" && !dates.contains(&name.as_str())) {
        let offered = if dates.is_empty() { "none".to_owned() } else { dates.join(", ") };
        return Err(refused(format!(
            "only _lastUpdated and {resource_type}'s date parameters ({offered}) are supported, not {name}"
        )));
    }
    if pairs.is_empty() {
        return Err(refused("it names no search parameter".into()));
    }
    let search = params::parse(resource_type, &pairs).map_err(|e| refused(e.message))?;
    let filter = TypeFilter {
        date_from: search.dates.from,
        date_to: search.dates.to,
        updated_from: search.last_updated.from,
        updated_to: search.last_updated.to,
    };
    if filters.insert(resource_type.to_owned(), filter).is_some() {
        return Err(refused(format!("{resource_type} has a _typeFilter already; send one per type")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_parameters_are_read_and_anything_else_refused() {
        let mut filters = BTreeMap::new();
        add(&mut filters, "ExplanationOfBenefit?service-date=ge2021-01-01").unwrap();
        let eob = filters["ExplanationOfBenefit"];
        assert!(eob.date_from.is_some() && eob.date_to.is_none() && eob.updated_from.is_none());
        add(&mut filters, "Condition?_lastUpdated=lt2026-01-01").unwrap();
        assert!(filters["Condition"].updated_to.is_some());
        for bad in [
            "ExplanationOfBenefit?service-date=ge2021-01-01",
            "Condition?code=E11.9",
            "Observation",
            "Basic?date=ge2020",
            "Encounter?date=ne2020",
            "Coverage?",
        ] {
            let error = add(&mut filters, bad).unwrap_err();
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
            assert!(error.message.contains("_typeFilter"), "{bad}: {}", error.message);
        }
    }
}
