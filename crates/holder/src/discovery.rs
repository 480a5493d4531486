//! Discovery: SMART configuration, OpenID configuration, JWKS, and the User-access Brand
//! Bundle (SMART App Launch 2.2 "User-access Brands and Endpoints").

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Holder;

/// SMART capabilities this server really has.
pub const CAPABILITIES: &[&str] = &[
    "launch-standalone",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-patient",
    "permission-offline",
    "permission-online",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
];

/// `GET {fhir-base}/.well-known/smart-configuration`
pub async fn smart_configuration(State(holder): State<Holder>) -> Response {
    let urls = &holder.urls;
    let body = json!({
        "issuer": urls.fhir_base,
        "jwks_uri": urls.jwks,
        "authorization_endpoint": urls.authorize,
        "token_endpoint": urls.token,
        "introspection_endpoint": urls.introspect,
        "revocation_endpoint": urls.revoke,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "scopes_supported": [
            "openid", "fhirUser", "launch/patient", "offline_access", "online_access",
            "patient/*.read", "patient/*.rs", "system/*.read", "system/*.rs",
            crate::oauth::client_credentials::MEMBER_MATCH_SCOPE,
            crate::oauth::client_credentials::BULK_MEMBER_MATCH_SCOPE
        ],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
        "user_access_brand_bundle": urls.brands,
        "user_access_brand_identifier": {"system": "urn:ietf:rfc:3986", "value": urls.origin()}
    });
    public_json(body)
}

/// `GET {fhir-base}/.well-known/openid-configuration` (the issuer is the FHIR base).
pub async fn openid_configuration(State(holder): State<Holder>) -> Response {
    let urls = &holder.urls;
    public_json(json!({
        "issuer": urls.fhir_base,
        "authorization_endpoint": urls.authorize,
        "token_endpoint": urls.token,
        "jwks_uri": urls.jwks,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"]
    }))
}

/// `GET /oauth/jwks`: the public key ID tokens are signed with.
pub async fn jwks(State(holder): State<Holder>) -> Response {
    public_json(serde_json::to_value(holder.key.jwks()).unwrap_or(Value::Null))
}

/// The plan's Brand Bundle: one `user-access-brand` Organization and its Endpoint.
pub fn brand_bundle(holder: &Holder) -> Value {
    let urls = &holder.urls;
    let brand = &holder.settings.brand;
    let logo = brand.logo_url.as_ref().map(|u| u.to_string()).unwrap_or_else(|| format!("{}favicon.svg", urls.public));
    let website = brand.website.as_ref().map(|u| u.to_string()).unwrap_or_else(|| urls.public.clone());
    let organization_url = format!("{}/Organization/brand", urls.fhir_base);
    let endpoint_url = format!("{}/Endpoint/patient-access", urls.fhir_base);
    let addresses: Vec<Value> = brand.states.iter().map(|s| json!({"state": s, "country": "US"})).collect();
    let mut organization = json!({
        "resourceType": "Organization",
        "id": "brand",
        "meta": {"profile": ["http://hl7.org/fhir/smart-app-launch/StructureDefinition/user-access-brand"]},
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/organization-brand",
                "extension": [{"url": "brandLogo", "valueUrl": logo}]
            },
            {
                "url": "http://hl7.org/fhir/StructureDefinition/organization-portal",
                "extension": [
                    {"url": "portalName", "valueString": format!("{} member portal", holder.plan_name)},
                    {"url": "portalDescription", "valueMarkdown": format!("Members of {} can share their claims and health records with other apps and plans.", holder.plan_name)},
                    {"url": "portalUrl", "valueUrl": urls.public},
                    {"url": "portalEndpoint", "valueReference": {"reference": "Endpoint/patient-access"}}
                ]
            }
        ],
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": urls.origin()}],
        "active": true,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "ins", "display": "Insurance Company"}]}],
        "name": holder.plan_name,
        "telecom": [{"system": "url", "value": website}],
        "endpoint": [{"reference": "Endpoint/patient-access"}]
    });
    if !brand.aliases.is_empty() {
        organization["alias"] = json!(brand.aliases);
    }
    if !addresses.is_empty() {
        organization["address"] = Value::Array(addresses);
    }
    json!({
        "resourceType": "Bundle",
        "id": "user-access-brands",
        "meta": {"profile": ["http://hl7.org/fhir/smart-app-launch/StructureDefinition/user-access-brands-bundle"]},
        "type": "collection",
        "timestamp": "2026-01-01T00:00:00Z",
        "entry": [
            {"fullUrl": organization_url, "resource": organization},
            {"fullUrl": endpoint_url, "resource": {
                "resourceType": "Endpoint",
                "id": "patient-access",
                "meta": {"profile": ["http://hl7.org/fhir/smart-app-launch/StructureDefinition/user-access-endpoint"]},
                "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/endpoint-fhir-version", "valueCode": "4.0.1"}],
                "status": "active",
                "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
                "name": format!("{} Patient Access FHIR R4 API", holder.plan_name),
                "contact": [{"system": "url", "value": urls.public}],
                "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "none"}]}],
                "address": urls.fhir_base
            }}
        ]
    })
}

/// `GET /brands.json`, with a weak ETag so apps can refresh cheaply (`If-None-Match` → 304).
pub async fn brands(State(holder): State<Holder>, headers: HeaderMap) -> Response {
    let body = brand_bundle(&holder).to_string();
    let etag = format!("W/\"{}\"", hex(&Sha256::digest(body.as_bytes())[..12]));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/fhir+json")], body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// JSON anyone may fetch, from any origin (discovery documents).
fn public_json(body: Value) -> Response {
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
