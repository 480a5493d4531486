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
    /// The one patient a member-authorized (SMART) token is for; `None` for the plan's own
    /// systems (`/api/fhir` with a staff-issued API token), which may read every record.
    pub patient_id: Option<String>,
    pub scopes: Scopes,
    pub include_sensitive: bool,
    pub client_id: String,
    /// The FHIR base this API answers at (links and `fullUrl`s use it).
    pub base: String,
    /// Another plan's system (Payer-to-Payer): claims go without remittances and cost-sharing.
    pub without_amounts: bool,
}

/// Marks the plan's own FHIR API (`/api/fhir`): requests carry an API token, not a SMART one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanApi;

/// Where the plan's own FHIR API answers, under this Baton's public URL.
pub const PLAN_API_PATH: &str = "/api/fhir";

impl FromRequestParts<Holder> for Access {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, holder: &Holder) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if parts.extensions.get::<PlanApi>().is_some() {
            return plan_api_access(parts, holder, token).await;
        }
        let invalid = || FhirError::unauthorized("the access token is not valid, has expired or was revoked");
        let hash = token_hash(token);
        let Some((token, grant)) = holder.store.oauth_token(&hash).await? else {
            let now = Timestamp::now();
            return match holder.store.system_token(&hash, now).await? {
                Some(system) => crate::p2p::read::access(parts, holder, system, now).await,
                None => Err(invalid()),
            };
        };
        let live = token.kind == TokenKind::Access
            && token.revoked_at.is_none()
            && grant.revoked_at.is_none()
            && token.expires_at > Timestamp::now().millis();
        if !live {
            return Err(invalid());
        }
        Ok(Access {
            patient_id: Some(grant.patient_id),
            scopes: Scopes::parse(&token.scope),
            include_sensitive: grant.include_sensitive,
            client_id: grant.client_id,
            base: holder.urls.fhir_base.clone(),
            without_amounts: false,
        })
    }
}

/// The request's bearer token.
pub(crate) fn bearer(parts: &Parts) -> Result<&str, FhirError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| FhirError::unauthorized("a bearer access token is required"))
}

/// An API token issued by staff: read-only, every patient; each use is audited.
async fn plan_api_access(parts: &Parts, holder: &Holder, token: &str) -> Result<Access, FhirError> {
    let now = Timestamp::now();
    let Some(api_token) = holder.store.use_api_token(&token_hash(token), now).await? else {
        return Err(FhirError::unauthorized("the API token is not valid or was revoked"));
    };
    holder
        .store
        .record_audit(&baton_store::NewAuditEvent {
            at: now,
            actor_account: None,
            actor: format!("api token \"{}\"", api_token.name),
            action: baton_vocab::AuditAction::ApiRead.to_string(),
            member_account: None,
            subject: format!("{} {}", parts.method, parts.uri.path()),
            detail: String::new(),
        })
        .await?;
    Ok(Access {
        patient_id: None,
        // Read and search every type; "patient" context is what the handlers check, and
        // `patient_id: None` lifts the one-patient limit.
        scopes: Scopes::parse("patient/*.rs"),
        include_sensitive: api_token.include_sensitive,
        client_id: format!("api-token:{}", api_token.id),
        base: format!("{}{PLAN_API_PATH}", holder.urls.public.trim_end_matches('/')),
        without_amounts: false,
    })
}

impl Access {
    /// A stored body as this reader gets it.
    pub fn shown(&self, resource_type: &str, body: String) -> String {
        if !self.without_amounts || resource_type != "ExplanationOfBenefit" {
            return body;
        }
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Object(mut claim)) => {
                baton_fhir::financial::strip_financial(&mut claim);
                serde_json::Value::Object(claim).to_string()
            }
            _ => body,
        }
    }

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
        match (&self.patient_id, is_compartment_type(resource_type)) {
            (Some(patient), true) => query.patient_id = Some(patient.clone()),
            (Some(patient), false) => {
                query.no_compartment = true;
                query.referenced_by_patient = Some(patient.clone());
            }
            (None, true) => {}
            (None, false) => query.no_compartment = true,
        }
        query
    }
}
