//! A permission becoming a consent, a link holding the sealed token and a queued transfer —
//! whether the member approved this plan's app at the old plan, or the old plan matched the
//! member for this plan's system (the Payer-to-Payer API).

use baton_store::{AccountId, MemberConsent, PayerLink, Timestamp};
use baton_vocab::{ConsentChannel, ConsentPolicy, LinkAccess, LinkState, TransferKind};
use serde_json::Value;
use time::{Date, OffsetDateTime};

use crate::authorization::Granted;
use crate::{Connected, Journey, JourneyError, Payer, consent, consent_statement, consent_until};

/// The Consent a member gives now, before it is stored (a match sends it first).
#[derive(Debug, Clone)]
pub(crate) struct GivenConsent {
    pub id: String,
    pub resource: Value,
    pub include_sensitive: bool,
    /// When the member agreed (milliseconds) and the last day it lasts.
    pub given_at: i64,
    pub end: Date,
}

impl GivenConsent {
    /// The consent as stored: given through `channel`, lasting to the end of its last day.
    pub(crate) fn stored(
        &self,
        member: AccountId,
        payer_id: &str,
        channel: ConsentChannel,
        now: Timestamp,
    ) -> MemberConsent {
        let end_ms = (self.end.midnight().assume_utc() + time::Duration::DAY).unix_timestamp() * 1000 - 1;
        MemberConsent {
            id: self.id.clone(),
            member_account: member,
            payer_id: payer_id.to_owned(),
            policy: ConsentPolicy::of(self.include_sensitive),
            period_start: self.given_at,
            period_end: end_ms,
            given_at: self.given_at,
            channel,
            resource: self.resource.to_string(),
            withdrawn_at: None,
            created_at: now.millis(),
            records_deleted: None,
            records_kept: None,
            records_shared: None,
            replaced_by: None,
        }
    }
}

impl Journey {
    /// Bringing records again from the same plan refreshes the permission instead of stacking
    /// another: the earlier ones the member gave by signing in there end, replaced by `newer`
    /// (which holds what they brought from now on), and their access at the plan is ended.
    async fn replace_earlier(
        &self,
        member: AccountId,
        payer_id: &str,
        newer: &str,
        now: Timestamp,
    ) -> Result<(), JourneyError> {
        let store = &self.store;
        let links = store.links_of(member).await?;
        for earlier in store.consents_of(member).await? {
            if earlier.id == newer || earlier.payer_id != payer_id || earlier.withdrawn_at.is_some() {
                continue;
            }
            let its_links: Vec<_> =
                links.iter().filter(|l| l.consent_id.as_deref() == Some(earlier.id.as_str())).collect();
            // A permission given for the Payer-to-Payer API (an opt-in) is not this kind.
            if its_links.is_empty() || its_links.iter().any(|l| l.access != LinkAccess::Member) {
                continue;
            }
            let ending = self.links_to_end(&earlier.id, member).await;
            if store.replace_consent(&earlier.id, newer, now).await? {
                tracing::info!(member = member.0, payer = %payer_id, earlier = %earlier.id, %newer, "permission replaced");
                self.end_access(&ending, now).await?;
            }
        }
        Ok(())
    }

    /// The HRex Consent `member` gives now for `payer`: this plan's own Patient for them, the two
    /// plans named by their identifiers where known, the words they read.
    pub(crate) async fn give_consent(
        &self,
        member: AccountId,
        payer: &Payer,
        include_sensitive: bool,
        concurrent: bool,
        given_at: i64,
        now: Timestamp,
    ) -> Result<GivenConsent, JourneyError> {
        let store = &self.store;
        let account =
            store.account_by_id(member).await?.ok_or_else(|| JourneyError::Failed("no such member".into()))?;
        let patient =
            baton_transfer::member_patient(store, &self.local_base, member).await.map_err(JourneyError::Failed)?;
        let given = OffsetDateTime::from_unix_timestamp_nanos(i128::from(given_at) * 1_000_000)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let end = consent_until(&account, concurrent, now)?;
        let id = uuid::Uuid::new_v4().to_string();
        let payer_identifiers = payer.credentials.backend.as_ref().map(|b| b.payer_identifiers.clone());
        let facts = consent::ConsentFacts {
            id: id.clone(),
            patient: format!("Patient/{patient}"),
            member_name: account.display_name.clone(),
            old_plan: consent::PlanRef {
                base: payer.fhir_base.to_string(),
                id: payer.id.clone(),
                name: payer.name.clone(),
                identifiers: payer_identifiers.unwrap_or_default(),
            },
            new_plan: consent::PlanRef {
                base: self.local_base.clone(),
                id: "this-plan".into(),
                name: self.plan_name.clone(),
                identifiers: self.identifiers.clone(),
            },
            include_sensitive,
            start: given.date(),
            end,
            given_at: given,
            statement: consent_statement(&payer.name, &self.plan_name, include_sensitive, end),
        };
        Ok(GivenConsent { id, resource: consent::hrex_consent(&facts), include_sensitive, given_at, end })
    }

    /// Stores the consent, the link (tokens sealed) and queues the first transfer.
    pub(crate) async fn connect(
        &self,
        member: AccountId,
        payer: &Payer,
        consent: GivenConsent,
        access: LinkAccess,
        fhir_base: &str,
        granted: Granted,
        now: Timestamp,
    ) -> Result<Connected, JourneyError> {
        let store = &self.store;
        store.insert_consent(&consent.stored(member, &payer.id, ConsentChannel::Web, now)).await?;
        let link_id = uuid::Uuid::new_v4().to_string();
        let sealer = |part: &'static str| {
            let place = PayerLink::token_place(&link_id, part);
            move |token: &str| self.cipher.seal_for(token, &place).map_err(|e| JourneyError::Failed(e.to_string()))
        };
        let link = PayerLink {
            id: link_id.clone(),
            member_account: member,
            payer_id: payer.id.clone(),
            consent_id: Some(consent.id.clone()),
            fhir_base: fhir_base.to_owned(),
            patient_id: granted.patient.clone(),
            scope: granted.scope.clone(),
            include_sensitive: consent.include_sensitive,
            access_token: Some(sealer("access")(&granted.access_token)?),
            access_expires_at: granted.expires_in_ms.map(|ms| now.millis() + ms),
            refresh_token: granted.refresh_token.as_deref().map(sealer("refresh")).transpose()?,
            id_token: granted.id_token.as_deref().map(sealer("id")).transpose()?,
            state: LinkState::Active,
            created_at: now.millis(),
            updated_at: now.millis(),
            source_sensitive: granted.sensitive,
            access,
        };
        store.insert_link(&link).await?;
        let transfer_id = uuid::Uuid::new_v4().to_string();
        store.enqueue_transfer(&transfer_id, &link, TransferKind::Initial, None, now).await?;
        if access == LinkAccess::Member {
            self.replace_earlier(member, &payer.id, &consent.id, now).await?;
        }
        tracing::info!(member = member.0, payer = %payer.id, transfer = %transfer_id, scope = %granted.scope, %access, "previous plan linked");
        Ok(Connected { consent_id: consent.id, link_id: link.id, transfer_id })
    }
}
