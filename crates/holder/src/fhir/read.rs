//! `GET [base]/{type}/{id}`

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use baton_fhir::exchange::{is_compartment_type, is_exchange_type};

use super::access::Access;
use super::{FhirError, fhir_json};
use crate::Holder;

pub async fn read(
    State(holder): State<Holder>,
    Path((resource_type, id)): Path<(String, String)>,
    access: Access,
) -> Result<Response, FhirError> {
    if !is_exchange_type(&resource_type) {
        return Err(FhirError::not_found(format!("{resource_type} is not a resource type this server offers")));
    }
    access.require_read(&resource_type)?;
    let not_found =
        || FhirError::not_found(format!("{resource_type}/{id} is not known, or not available to this token"));
    if !baton_fhir::is_valid_id(&id) {
        return Err(not_found());
    }
    let mut query = access.visible(&resource_type);
    query.ids = vec![id.clone()];
    query.limit = 1;
    if let Some(resource) = holder.store.search_resources(&query).await?.resources.pop() {
        let mut response = fhir_json(access.shown(&resource_type, resource.body));
        if let Ok(etag) = HeaderValue::from_str(&format!("W/\"{}\"", resource.version_id)) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(response);
    }
    // Deleted: say so (410) only to a token that could have seen it.
    if let Some(stored) = holder.store.read_resource(&resource_type, &id).await? {
        let was_theirs = match &access.patient_id {
            Some(own) => is_compartment_type(&resource_type) && stored.patient_id.as_deref() == Some(own.as_str()),
            None => true,
        };
        if stored.deleted_at.is_some() && was_theirs {
            return Err(FhirError::gone(format!("{resource_type}/{id} was deleted")));
        }
    }
    Err(not_found())
}
