//! `GET [base]/metadata`: a CapabilityStatement that lists exactly what this server does.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use baton_fhir::exchange::EXCHANGE_TYPES;
use baton_fhir::index::date_parameters;
use serde_json::{Value, json};

use super::fhir_json;
use super::params::include_parameters;
use crate::Holder;

/// HRex `$member-match`, for other plans' systems (SMART Backend Services).
const MEMBER_MATCH: &str = "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match";
/// PDex `$bulk-member-match` (asynchronous), likewise.
const BULK_MEMBER_MATCH: &str = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch";
/// PDex `$davinci-data-export` on a matched Group.
const DATA_EXPORT: &str = "http://hl7.org/fhir/us/davinci-atr/OperationDefinition/davinci-data-export";

pub fn capability_statement(holder: &Holder) -> Value {
    let urls = &holder.urls;
    let mut resources: Vec<Value> = EXCHANGE_TYPES
        .iter()
        .map(|t| {
            let mut params = vec![
                json!({"name": "_id", "type": "token"}),
                json!({"name": "_lastUpdated", "type": "date"}),
                json!({"name": "identifier", "type": "token"}),
            ];
            if baton_fhir::exchange::is_compartment_type(t) && *t != "Patient" {
                params.push(json!({"name": "patient", "type": "reference"}));
            }
            if *t == "Provenance" {
                params.push(json!({"name": "target", "type": "reference"}));
            }
            for date in date_parameters(t) {
                params.push(json!({"name": date, "type": "date"}));
            }
            let mut resource = json!({
                "type": t,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
                "searchRevInclude": ["Provenance:target"],
            });
            let includes: Vec<String> = include_parameters(t).iter().map(|p| format!("{t}:{p}")).collect();
            if !includes.is_empty() {
                resource["searchInclude"] = json!(includes);
            }
            if *t == "Patient" {
                resource["operation"] = json!([
                    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                    {"name": "member-match", "definition": MEMBER_MATCH},
                ]);
            }
            resource
        })
        .collect();
    // The member Groups of Payer-to-Payer bulk matches, for the plan that asked.
    resources.push(json!({
        "type": "Group",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [
            {"name": "identifier", "type": "token"},
            {"name": "characteristic", "type": "token"},
            {"name": "code", "type": "token"}
        ],
        "operation": [
            {"name": "bulk-member-match", "definition": BULK_MEMBER_MATCH},
            {"name": "davinci-data-export", "definition": DATA_EXPORT}
        ]
    }));
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-24",
        "publisher": holder.plan_name,
        "kind": "instance",
        "software": {"name": "Baton", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("{} Patient Access API", holder.plan_name), "url": urls.fhir_base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Member-authorized access (SMART App Launch 2.2, standalone launch, confidential clients), and Patient/$member-match for other plans' systems (SMART Backend Services, client_credentials with private_key_jwt). Unknown search parameters are refused with 400; paging follows Bundle.link next.",
            "security": {
                "cors": true,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "authorize", "valueUri": urls.authorize},
                        {"url": "token", "valueUri": urls.token},
                        {"url": "introspect", "valueUri": urls.introspect},
                        {"url": "revoke", "valueUri": urls.revoke}
                    ]
                }]
            },
            "resource": resources,
            "operation": [
                {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
                {"name": "member-match", "definition": MEMBER_MATCH},
                {"name": "bulk-member-match", "definition": BULK_MEMBER_MATCH},
                {"name": "davinci-data-export", "definition": DATA_EXPORT}
            ]
        }]
    })
}

/// The plan's own FHIR API (`/api/fhir`): the same reads and searches over every patient,
/// read-only, for bearer API tokens that staff issue and revoke.
pub fn plan_api_capability_statement(holder: &Holder) -> Value {
    let mut statement = capability_statement(holder);
    let base = format!("{}{}", holder.urls.public.trim_end_matches('/'), super::access::PLAN_API_PATH);
    statement["implementation"] =
        json!({"description": format!("{} FHIR API for the plan's own systems", holder.plan_name), "url": base});
    statement["rest"][0]["documentation"] = json!(
        "Read-only access to every record this plan holds, for the plan's own systems. Authenticate with \
         `Authorization: Bearer <API token>`; tokens are issued and revoked by staff in Baton's console. \
         Every request is recorded in the audit log. Sensitive records are left out unless the token allows them."
    );
    // The Payer-to-Payer operations answer at the member-facing base only.
    statement["rest"][0]["operation"] =
        json!([{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
    if let Some(resources) = statement["rest"][0]["resource"].as_array_mut() {
        resources.retain(|r| r["type"] != "Group");
    }
    for resource in statement["rest"][0]["resource"].as_array_mut().into_iter().flatten() {
        if resource["type"] == "Patient" {
            resource["operation"] = json!([{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
        }
    }
    statement["rest"][0]["security"] = json!({
        "cors": false,
        "description": "Bearer API tokens issued by staff (stored hashed, revocable)."
    });
    statement
}

pub async fn plan_api_metadata(State(holder): State<Holder>) -> Response {
    fhir_json(plan_api_capability_statement(&holder).to_string())
}

pub async fn metadata(State(holder): State<Holder>) -> Response {
    let mut response = fhir_json(capability_statement(&holder).to_string());
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}
