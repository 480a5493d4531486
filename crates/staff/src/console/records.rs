//! A member's records for staff, by kind; one record; a privacy officer's reveal.

use baton_store::Account;
use baton_vocab::views::staff::{MemberRecords, RecordDetail};
use baton_vocab::{Category, Role};

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;
use crate::records::{self, KINDS};

impl Console {
    /// The member's records of `kind` (empty: claims). `revealed(type, id)`: the sensitive
    /// records this staff member revealed.
    pub async fn member_records(
        &self,
        staff: &Account,
        member: &str,
        kind: &str,
        revealed: impl Fn(&str, &str) -> bool,
    ) -> Result<MemberRecords, ConsoleError> {
        let account = self.member(member).await?;
        let category = match kind {
            "" => Category::Claims,
            k => k.parse::<Category>().ok().filter(|c| KINDS.contains(c)).ok_or(ConsoleError::Invalid("kind"))?,
        };
        let privacy = staff.roles.has(Role::Privacy);
        let listed = records::of_member(&self.store, account.id, category, &self.local_base(), |t, id| {
            privacy && revealed(t, id)
        })
        .await?;
        let subject = format!("member {} {category}", account.id.0);
        self.audit(staff, Action::RecordsView, Some(account.id), &subject, &format!("{} listed", listed.items.len()))
            .await?;
        let items = listed
            .items
            .into_iter()
            .map(|mut item| {
                item.from = item.from.as_deref().map(|system| self.payer_of_base(system));
                item
            })
            .collect();
        Ok(MemberRecords {
            admin: is_admin(staff),
            privacy,
            member: account.id.0,
            member_name: account.display_name,
            kind: category,
            total: listed.total,
            items,
        })
    }

    /// One record, hidden (nothing of it) when it is sensitive and not revealed.
    pub async fn record(
        &self,
        staff: &Account,
        resource_type: &str,
        id: &str,
        revealed: bool,
    ) -> Result<RecordDetail, ConsoleError> {
        if !baton_fhir::is_resource_type_name(resource_type) || !baton_fhir::is_valid_id(id) {
            return Err(ConsoleError::NotFound);
        }
        let stored = self
            .store
            .read_resource(resource_type, id)
            .await?
            .filter(|r| r.deleted_at.is_none())
            .ok_or(ConsoleError::NotFound)?;
        let privacy = staff.roles.has(Role::Privacy);
        let hidden = stored.sensitive && !(privacy && revealed);
        let member = stored.member_account.map(baton_store::AccountId);
        let key = format!("{resource_type}/{id}");
        self.audit(staff, Action::RecordView, member, &key, if hidden { "sensitive: hidden" } else { "" }).await?;
        let body: Option<serde_json::Value> = if hidden { None } else { serde_json::from_str(&stored.body).ok() };
        Ok(RecordDetail {
            admin: is_admin(staff),
            privacy,
            title: body.as_ref().map(baton_records::summary::title),
            narrative: body.as_ref().and_then(baton_records::narrative::of_resource),
            json: body.as_ref().and_then(|b| serde_json::to_string_pretty(b).ok()),
            from: if hidden { None } else { stored.source_system.clone() },
            source_id: if hidden { None } else { stored.source_id.clone() },
            security: if hidden { vec![] } else { stored.security_labels().map(str::to_owned).collect() },
            member: stored.member_account,
            sensitive: stored.sensitive,
            hidden,
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
        })
    }

    /// A privacy officer reveals one record (the caller keeps it revealed for their session),
    /// with a reason of 1 to 500 characters, recorded.
    pub async fn reveal(
        &self,
        staff: &Account,
        resource_type: &str,
        id: &str,
        reason: &str,
    ) -> Result<(), ConsoleError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(ConsoleError::Invalid("reason"));
        }
        let stored = self.store.read_resource(resource_type, id).await?.ok_or(ConsoleError::NotFound)?;
        let member = stored.member_account.map(baton_store::AccountId);
        self.audit(staff, Action::RecordReveal, member, &format!("{resource_type}/{id}"), reason).await
    }

    /// A plan's name, by its FHIR base (the base when it is not in the directory).
    fn payer_of_base(&self, system: &str) -> String {
        self.journey
            .payers
            .all()
            .iter()
            .find(|p| p.fhir_base.as_str().trim_end_matches('/') == system.trim_end_matches('/'))
            .map_or_else(|| system.to_owned(), |p| p.name.clone())
    }

    fn local_base(&self) -> String {
        self.journey.local_base.clone()
    }
}
