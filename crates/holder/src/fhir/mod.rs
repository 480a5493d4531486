//! The Patient Access FHIR R4 API (JSON): read, search and `Patient/$everything`, each limited
//! to the token's patient compartment, its scopes, and the member's sensitive-data choice.

pub mod access;
pub mod capability;
mod error;
pub mod everything;
pub(crate) mod params;
pub mod read;
pub mod search;

pub use error::FhirError;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// A FHIR JSON response.
pub(crate) fn fhir_json(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
    response
}
