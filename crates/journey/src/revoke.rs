//! Ending a withdrawn permission's access at the previous plan too (RFC 7009): its refresh
//! token is revoked there when the plan's SMART configuration offers a revocation endpoint.
//! Best effort — the permission is withdrawn here whatever the plan answers — and recorded on
//! the newest transfer of each link, in words.

use baton_store::{PayerLink, Timestamp, TransferFilter};
use baton_vocab::{EventKind, LinkAccess};

use crate::{Journey, JourneyError};

impl Journey {
    /// The links a withdrawal is about to revoke here, with tokens still to end there.
    pub(crate) async fn links_to_end(&self, consent_id: &str, member: baton_store::AccountId) -> Vec<PayerLink> {
        let links = self.store.links_of(member).await.unwrap_or_default();
        links
            .into_iter()
            .filter(|l| l.consent_id.as_deref() == Some(consent_id))
            .filter(|l| l.access == LinkAccess::Member && (l.refresh_token.is_some() || l.access_token.is_some()))
            .collect()
    }

    /// Asks each link's plan to revoke its token, and records what it said.
    pub(crate) async fn end_access(&self, links: &[PayerLink], now: Timestamp) -> Result<(), JourneyError> {
        for link in links {
            let said = match self.revoke_at_plan(link).await {
                Ok(true) => "the previous plan was asked to end this plan's access, and agreed".to_owned(),
                Ok(false) => {
                    "the previous plan offers no way to end access early; it ends when its token expires".to_owned()
                }
                Err(why) => format!("the previous plan could not be asked to end this plan's access: {why}"),
            };
            tracing::info!(link = %link.id, payer = %link.payer_id, %said, "access ended at the previous plan");
            let filter = TransferFilter {
                link_id: Some(link.id.clone()),
                member_account: Some(link.member_account),
                limit: 1,
                ..TransferFilter::default()
            };
            if let Some(transfer) = self.store.list_transfers(&filter).await?.first() {
                self.store.add_transfer_event(&transfer.id, now, EventKind::AccessEnded, &said).await?;
            }
        }
        Ok(())
    }

    /// `Ok(false)`: the plan offers no revocation endpoint.
    async fn revoke_at_plan(&self, link: &PayerLink) -> Result<bool, String> {
        let payer = self.directory_payer(&link.payer_id).map_err(|e| e.to_string())?;
        let endpoints = self.discovery.endpoints(&payer).await.map_err(|e| e.to_string())?;
        let Some(url) = endpoints.revocation else { return Ok(false) };
        baton_transfer::auth::revoke(&self.cipher, &self.http, link, &payer.credentials, url.as_str())
            .await
            .map(|()| true)
            .map_err(|e| e.to_string())
    }
}
