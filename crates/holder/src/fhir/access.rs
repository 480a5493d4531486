//! Who is asking: the bearer token, and what it may see.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use baton_fhir::exchange::is_compartment_type;
use baton_fhir::smart::Scopes;
use baton_store::{ResourceQuery, Timestamp, TokenKind};

use super::FhirError;
use crate::Holder;
use crate::oauth::token_hash;

/// A valid access token's permissions.
#[derive(Debug, Clone)]
pub struct Access {
    pub patient_id: String,
    pub scopes: Scopes,
    pub include_sensitive: bool,
    pub client_id: String,
}

impl FromRequestParts<Holder> for Access {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, holder: &Holder) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FhirError::unauthorized("a bearer access token is required"))?;
        let invalid = || FhirError::unauthorized("the access token is not valid, has expired or was revoked");
        let (token, grant) = holder.store.oauth_token(&token_hash(token)).await?.ok_or_else(invalid)?;
        let live = token.kind() == Some(TokenKind::Access)
            && token.revoked_at.is_none()
            && grant.revoked_at.is_none()
            && token.expires_at > Timestamp::now().millis();
        if !live {
            return Err(invalid());
        }
        Ok(Access {
            patient_id: grant.patient_id,
            scopes: Scopes::parse(&token.scope),
            include_sensitive: grant.include_sensitive,
            client_id: grant.client_id,
        })
    }
}

impl Access {
    /// Refuses (403) unless the token may read resources of this type.
    pub fn require_read(&self, resource_type: &str) -> Result<(), FhirError> {
        if self.scopes.can_read(resource_type) {
            Ok(())
        } else {
            Err(FhirError::forbidden(format!("the token's scopes do not allow reading {resource_type}")))
        }
    }

    /// Refuses (403) unless the token may search resources of this type.
    pub fn require_search(&self, resource_type: &str) -> Result<(), FhirError> {
        if self.scopes.can_search(resource_type) {
            Ok(())
        } else {
            Err(FhirError::forbidden(format!("the token's scopes do not allow searching {resource_type}")))
        }
    }

    /// What this token may see of a type: its patient's compartment, or — for directory types
    /// — only entries its patient's (visible) records refer to; never sensitive resources when
    /// the member excluded them.
    pub fn visible(&self, resource_type: &str) -> ResourceQuery {
        let mut query = ResourceQuery {
            resource_types: vec![resource_type.to_owned()],
            exclude_sensitive: !self.include_sensitive,
            ..Default::default()
        };
        if is_compartment_type(resource_type) {
            query.patient_id = Some(self.patient_id.clone());
        } else {
            query.no_compartment = true;
            query.referenced_by_patient = Some(self.patient_id.clone());
        }
        query
    }
}
