//! `grant_type=client_credentials` (SMART Backend Services): another plan's system,
//! authenticated with a signed assertion (`private_key_jwt`), gets a short-lived token for the
//! Payer-to-Payer operations. No member, no refresh token: what the token reaches of a member
//! is decided by a match whose consent holds, never by the token alone.

use std::collections::HashMap;

use baton_fhir::smart::{Context, Scope, Scopes};
use baton_store::{OAuthClient, SystemToken, Timestamp};
use serde_json::{Value, json};

use super::errors::OAuthError;
use super::{random_token, token_hash};
use crate::Holder;
use crate::clients::Method;

/// How long a system token lives (SMART Backend Services: `expires_in` SHOULD NOT exceed 300).
pub const SYSTEM_TOKEN_SECONDS: i64 = 300;

/// HRex `$member-match`, as PDex 2.2 "Scopes for Operations" writes its scope.
pub const MEMBER_MATCH_SCOPE: &str = "http://hl7.org/fhir/us/davinci-hrex/OperationDefinition/member-match";
/// PDex 2.2 `$bulk-member-match`…
pub const BULK_MEMBER_MATCH_SCOPE: &str = "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch";
/// …and the STU 2.1 spelling, still sent by payers on that version.
pub const BULK_MEMBER_MATCH_SCOPE_STU21: &str =
    "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/bulk-member-match";

/// The operation scopes a payer client may hold.
pub const OPERATION_SCOPES: [&str; 3] = [MEMBER_MATCH_SCOPE, BULK_MEMBER_MATCH_SCOPE, BULK_MEMBER_MATCH_SCOPE_STU21];

/// Issues a system token for the requested scopes this client is registered for.
pub async fn client_credentials(
    holder: &Holder,
    client: &OAuthClient,
    method: Method,
    params: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    if method != Method::PrivateKeyJwt {
        return Err(OAuthError::invalid_client("client_credentials needs a signed client assertion (private_key_jwt)"));
    }
    if client.redirect_uris().next().is_some() {
        return Err(OAuthError::unauthorized_client(
            "this client is registered for members' authorization (it has redirect URIs), not client_credentials",
        ));
    }
    let requested = params
        .get("scope")
        .map(String::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| OAuthError::invalid_request("scope is required"))?;
    let scope = grant(&Scopes::parse(&client.scopes), requested);
    if scope.is_empty() {
        return Err(OAuthError::invalid_scope("none of the requested scopes is one this client is registered for"));
    }
    let token = random_token();
    let now = Timestamp::now();
    holder
        .store
        .insert_system_token(&SystemToken {
            token_hash: token_hash(&token),
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            issued_at: now.millis(),
            expires_at: now.millis() + SYSTEM_TOKEN_SECONDS * 1000,
        })
        .await
        .map_err(OAuthError::server)?;
    tracing::info!(client_id = %client.client_id, %scope, "system token issued");
    Ok(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": SYSTEM_TOKEN_SECONDS,
        "scope": scope,
    }))
}

/// The requested scopes `registered` covers, space-separated: system resource scopes (a
/// registered `system/*.rs` covers `system/Patient.read`) and the operation scopes, each
/// exactly as registered. Anything else is left out.
pub fn grant(registered: &Scopes, requested: &str) -> String {
    let mut granted: Vec<String> = Vec::new();
    for text in requested.split_whitespace() {
        let wanted = Scope::parse(text);
        let allowed = match &wanted {
            Scope::Resource(w) if w.context == Context::System && !w.write && !w.restricted && (w.read || w.search) => {
                registered.iter().any(|r| match r {
                    Scope::Resource(r) => {
                        r.context == Context::System
                            && !r.restricted
                            && (r.resource_type == "*" || r.resource_type == w.resource_type)
                            && (r.read || !w.read)
                            && (r.search || !w.search)
                    }
                    _ => false,
                })
            }
            Scope::Other(_) => registered.contains(&wanted),
            _ => false,
        };
        if allowed && !granted.iter().any(|g| g == text) {
            granted.push(text.to_owned());
        }
    }
    granted.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Scopes {
        Scopes::parse(&format!("system/*.rs {MEMBER_MATCH_SCOPE} {BULK_MEMBER_MATCH_SCOPE}"))
    }

    #[test]
    fn grants_the_system_and_operation_scopes_the_client_is_registered_for() {
        let granted = grant(&registered(), &format!("system/Patient.read system/*.rs {MEMBER_MATCH_SCOPE}"));
        assert_eq!(granted, format!("system/Patient.read system/*.rs {MEMBER_MATCH_SCOPE}"));
    }

    #[test]
    fn never_grants_patient_user_or_write_scopes_or_unregistered_operations() {
        let asked =
            format!("patient/*.rs user/*.read system/*.write system/Patient.cud {BULK_MEMBER_MATCH_SCOPE_STU21}");
        assert_eq!(grant(&registered(), &asked), "");
        assert_eq!(grant(&Scopes::parse("system/Patient.rs"), "system/Observation.rs"), "");
        assert_eq!(grant(&Scopes::parse("system/*.s"), "system/Patient.rs"), "");
    }
}
