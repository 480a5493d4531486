//! The member Groups a plan's bulk matches made, for that plan only (PDex §pdex-157..164):
//! `GET /fhir/Group/{id}` and `GET /fhir/Group` with `identifier`, `code` or `characteristic`
//! (the result: `match`, `nomatch`, `consentconstraint`).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use baton_fhir::bundle::{SearchMode, Searchset};
use baton_store::Timestamp;

use super::SystemAccess;
use crate::Holder;
use crate::fhir::FhirError;

/// Groups one search lists at most.
const LIMIT: u32 = 1000;

/// `GET /fhir/Group/{id}`
pub async fn read(State(holder): State<Holder>, access: SystemAccess, Path(id): Path<String>) -> Response {
    match holder.store.member_group(&access.client_id, &id).await {
        Ok(Some(group)) => fhir_json(group.body),
        Ok(None) => FhirError::not_found(format!("Group/{id} is not known, or not this client's")).into_response(),
        Err(error) => FhirError::from(error).into_response(),
    }
}

/// `GET /fhir/Group?…`
pub async fn search(State(holder): State<Holder>, access: SystemAccess, RawQuery(query): RawQuery) -> Response {
    let result = async {
        let mut code: Option<String> = None;
        let mut identifier: Option<String> = None;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            // A token's code, without its system.
            let token = value.rsplit('|').next().unwrap_or_default().to_owned();
            match name.as_ref() {
                "code" | "characteristic" => code = Some(token),
                "identifier" | "_id" => identifier = Some(token),
                "characteristic-value-reference" | "_count" | "_format" => {}
                other => return Err(FhirError::bad_parameter(format!("Group search does not take {other}"))),
            }
        }
        let groups: Vec<_> = holder
            .store
            .member_groups(&access.client_id, LIMIT)
            .await?
            .into_iter()
            .filter(|g| code.as_ref().is_none_or(|c| *c == g.code) && identifier.as_ref().is_none_or(|i| *i == g.id))
            .collect();
        let mut bundle = Searchset::new(Timestamp::now().to_fhir_instant(), Some(groups.len() as u64));
        bundle.link("self", format!("{}/Group", holder.urls.fhir_base));
        for group in groups {
            let full_url = format!("{}/Group/{}", holder.urls.fhir_base, group.id);
            bundle.push(full_url, group.body, SearchMode::Match).map_err(FhirError::server)?;
        }
        Ok(fhir_json(bundle.to_json()))
    }
    .await;
    result.unwrap_or_else(|error: FhirError| error.into_response())
}

fn fhir_json(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"));
    response
}
