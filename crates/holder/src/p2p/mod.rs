//! The Payer-to-Payer API (CMS-0057-F, PDex 2.2): other plans' systems, with a SMART Backend
//! Services token, match a former member (`Patient/$member-match`, HRex 1.2) with the Consent
//! the member gave them. A match is the only way such a token reaches a member.

pub mod bulk_match;
pub mod export;
pub mod groups;
pub mod jobs;
pub mod member_match;
pub mod read;
pub mod request;
pub mod type_filter;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use baton_fhir::smart::Scopes;
use baton_store::{AccountId, NewAuditEvent, Timestamp};
use baton_vocab::AuditAction;

use crate::Holder;
use crate::fhir::FhirError;
use crate::oauth::token_hash;

/// Another plan's system, by its token (`client_credentials`).
#[derive(Debug, Clone)]
pub struct SystemAccess {
    pub client_id: String,
    pub scopes: Scopes,
}

impl SystemAccess {
    /// Refuses (403) unless the token carries `scope` (an operation's scope, exactly).
    pub fn require(&self, scope: &str) -> Result<(), FhirError> {
        if self.scopes.iter().any(|s| s.to_string() == scope) {
            Ok(())
        } else {
            Err(FhirError::forbidden(format!("the token's scopes do not include {scope}")))
        }
    }
}

impl FromRequestParts<Holder> for SystemAccess {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, holder: &Holder) -> Result<Self, Self::Rejection> {
        let hash = token_hash(crate::fhir::access::bearer(parts)?);
        if let Some(token) = holder.store.system_token(&hash, Timestamp::now()).await? {
            return Ok(SystemAccess { client_id: token.client_id, scopes: Scopes::parse(&token.scope) });
        }
        // A member's app token is valid, but not here.
        if holder.store.oauth_token(&hash).await?.is_some() {
            return Err(FhirError::forbidden(
                "this operation is for other plans' systems (SMART Backend Services), not members' apps",
            ));
        }
        Err(FhirError::unauthorized("the access token is not valid or has expired"))
    }
}

/// Records what another plan's system did.
pub(crate) async fn audit(
    holder: &Holder,
    client_id: &str,
    member: Option<AccountId>,
    action: AuditAction,
    subject: &str,
    detail: &str,
) -> Result<(), FhirError> {
    holder
        .store
        .record_audit(&NewAuditEvent {
            at: Timestamp::now(),
            actor_account: None,
            actor: format!("plan system \"{client_id}\""),
            action: action.to_string(),
            member_account: member,
            subject: subject.to_owned(),
            detail: detail.to_owned(),
        })
        .await?;
    Ok(())
}
