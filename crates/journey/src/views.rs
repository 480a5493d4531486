//! What the member's pages show of their transfers and permissions (the read models of
//! `baton_vocab::views`), built here so that the pages and the live progress stream only ask.

use std::collections::BTreeMap;

use baton_fhir::exchange::category_of;
use baton_store::{Account, AccountId, MemberConsent, PayerLink, PermissionRecords, Transfer, TransferFilter};
use baton_transfer::Progress;
use baton_vocab::{Category, LinkState};
use baton_vocab::views::{
    CategoryCount, ConsentPageData, Day, Deletion, EarlierLink, LinkSummary, MEMBER_CATEGORIES, MemberHome, PayerCard,
    PayerResults, TransferView, WithdrawalPreview,
};
use serde_json::Value;

use crate::{Journey, JourneyError};

impl Journey {
    /// The previous plans a member's search finds: the first `limit` in name order, and how
    /// many in all.
    pub fn payer_cards(&self, query: &str, limit: usize) -> PayerResults {
        let found = self.payers.search(query);
        PayerResults {
            total: found.len(),
            shown: found
                .into_iter()
                .take(limit)
                .map(|p| PayerCard {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    states: p.states.clone(),
                    logo_url: p.logo_url.as_ref().map(ToString::to_string),
                })
                .collect(),
        }
    }

    /// The consent page for bringing records from `payer`: until when the permission would
    /// last, or that the time to give it has passed. `None` for a plan not in the directory.
    pub fn consent_page(&self, account: &Account, payer: &str, today: time::Date) -> Option<ConsentPageData> {
        let found = self.payers.get(payer)?;
        let (until, closed) = match crate::consent::Window::for_coverage(account.coverage_start, today) {
            crate::consent::Window::Open { until } => (until, false),
            crate::consent::Window::Closed { ended } => (ended, true),
        };
        Some(ConsentPageData {
            payer_id: found.id.clone(),
            payer_name: found.name.clone(),
            plan_name: self.plan_name.clone(),
            until: baton_vocab::views::day_of(until),
            closed,
            by_match: found.credentials.backend.is_some(),
            // The name on file, first word and the rest: the member corrects it to the card.
            given: account.display_name.split_whitespace().next().unwrap_or_default().to_owned(),
            family: account.display_name.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        })
    }

    /// The member home: who they are, and one card per previous plan — its current permission
    /// (the newest still in force, else the newest) with its latest transfer, the earlier ones
    /// behind it.
    pub async fn member_home(&self, account: &Account) -> Result<MemberHome, JourneyError> {
        let store = &self.store;
        let mut links = store.links_of(account.id).await?;
        links.sort_by_key(|l| (l.state == LinkState::Revoked, std::cmp::Reverse(l.created_at)));
        let mut summaries: Vec<LinkSummary> = Vec::with_capacity(links.len());
        for link in links {
            let filter = TransferFilter {
                link_id: Some(link.id.clone()),
                member_account: Some(account.id),
                limit: 1,
                ..TransferFilter::default()
            };
            let latest = store.list_transfers(&filter).await?.into_iter().next();
            let consent = match &link.consent_id {
                Some(id) => store.consent(id).await?,
                None => None,
            };
            let given_on = consent.as_ref().and_then(|c| day(c.given_at));
            let withdrawn = link.state == LinkState::Revoked;
            let replaced = consent.as_ref().is_some_and(|c| c.replaced_by.is_some());
            if let Some(card) = summaries.iter_mut().find(|s| s.payer_id == link.payer_id) {
                card.earlier.push(EarlierLink { transfer_id: latest.map(|t| t.id), given_on, withdrawn, replaced });
                continue;
            }
            summaries.push(LinkSummary {
                payer_name: self.payer_name(&link.payer_id),
                stored: latest.as_ref().map_or(0, |t| Progress::from_json(&t.progress).records()),
                state: latest.as_ref().map(|t| t.state),
                transfer_id: latest.map(|t| t.id),
                withdrawn,
                given_on,
                include_sensitive: link.include_sensitive,
                until: consent.as_ref().and_then(|c| day(c.period_end)),
                earlier: vec![],
                payer_id: link.payer_id,
            });
        }
        for card in &mut summaries {
            card.earlier.sort_by_key(|e| std::cmp::Reverse(e.given_on));
        }
        Ok(MemberHome {
            display_name: account.display_name.clone(),
            member_id: account.member_id.clone(),
            coverage_start: account.coverage_start.map(baton_vocab::views::day_of),
            links: summaries,
        })
    }

    /// The member's transfer as their progress page shows it; `None` when it is not theirs
    /// (another member's transfer does not exist, as far as this member can tell).
    pub async fn member_transfer(&self, member: AccountId, id: &str) -> Result<Option<TransferView>, JourneyError> {
        let Some((transfer, link, consent)) = self.members_transfer(member, id).await? else { return Ok(None) };
        let payer_name = self.payer_name(&link.payer_id);
        let progress = Progress::from_json(&transfer.progress);
        Ok(Some(transfer_view(transfer, link, consent, payer_name, &progress)))
    }

    /// The member asks for their failed transfer to be tried again; `false` when it is not
    /// theirs (or does not exist). One that is not failed stays as it is.
    pub async fn retry_member_transfer(&self, member: AccountId, id: &str) -> Result<bool, JourneyError> {
        let store = &self.store;
        if store.transfer(id).await?.is_none_or(|t| t.member_account != member) {
            return Ok(false);
        }
        store.retry_transfer(id, "the member", baton_store::Timestamp::now()).await?;
        Ok(true)
    }

    /// What withdrawing the permission a transfer ran under, and deleting what arrived, would
    /// delete and keep; `None` when the transfer is not the member's or ran under no permission.
    pub async fn withdrawal_preview(
        &self,
        member: AccountId,
        transfer_id: &str,
    ) -> Result<Option<WithdrawalPreview>, JourneyError> {
        let Some((transfer, link, Some(consent))) = self.members_transfer(member, transfer_id).await? else {
            return Ok(None);
        };
        let (records, supporting) = counted(&self.store.permission_records(member, &consent.id).await?);
        Ok(Some(WithdrawalPreview {
            transfer_id: transfer.id,
            payer_name: self.payer_name(&link.payer_id),
            deleted: records.deleted,
            deleted_by_kind: by_kind(&records),
            supporting,
            kept: records.kept,
            shared: records.shared,
            withdrawn: consent.withdrawn_at.is_some(),
            consent_id: consent.id,
        }))
    }

    async fn members_transfer(
        &self,
        member: AccountId,
        id: &str,
    ) -> Result<Option<(Transfer, PayerLink, Option<MemberConsent>)>, JourneyError> {
        let store = &self.store;
        let Some(transfer) = store.transfer(id).await?.filter(|t| t.member_account == member) else {
            return Ok(None);
        };
        let link = store
            .link(&transfer.link_id)
            .await?
            .ok_or_else(|| JourneyError::Failed(format!("transfer {id} names a link that does not exist")))?;
        let consent = match &link.consent_id {
            Some(id) => store.consent(id).await?,
            None => None,
        };
        Ok(Some((transfer, link, consent)))
    }

    fn payer_name(&self, payer_id: &str) -> String {
        self.payers.known(payer_id).map_or_else(|| payer_id.to_owned(), |p| p.name)
    }
}

/// What deleting a permission's records does, counted as every screen counts records
/// (`exchange::record_types`): `deleted` and `kept` are records; what supports them goes in the
/// second figure when it goes (care providers, record sources), in `shared` when it stays.
pub(crate) fn counted(all: &PermissionRecords) -> (PermissionRecords, u64) {
    let types = baton_fhir::exchange::record_types();
    let of_records = |by_type: &BTreeMap<String, u64>| -> u64 {
        by_type.iter().filter(|(t, _)| types.contains(&t.as_str())).map(|(_, n)| n).sum()
    };
    let (deleted, kept) = (of_records(&all.deleted_by_type), of_records(&all.kept_by_type));
    let supporting = all.deleted.saturating_sub(deleted);
    let records = PermissionRecords {
        deleted,
        kept,
        shared: all.shared + all.kept.saturating_sub(kept),
        deleted_by_type: all.deleted_by_type.iter().filter(|(t, _)| types.contains(&t.as_str())).map(|(t, n)| (t.clone(), *n)).collect(),
        kept_by_type: all.kept_by_type.iter().filter(|(t, _)| types.contains(&t.as_str())).map(|(t, n)| (t.clone(), *n)).collect(),
        deleted_by_transfer: all.deleted_by_transfer.clone(),
    };
    (records, supporting)
}

/// Records per kind the member knows; both kinds of claim together (which is which is in the
/// record, not its type).
fn by_kind(records: &PermissionRecords) -> Vec<(String, u64)> {
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for (resource_type, n) in &records.deleted_by_type {
        let kind = match resource_type.as_str() {
            "ExplanationOfBenefit" => "claims_and_prior_authorizations",
            other => category_of(other, &Value::Null).key(),
        };
        if kind == Category::Supporting.key() {
            continue;
        }
        *kinds.entry(kind).or_default() += n;
    }
    let order = |kind: &str| match kind {
        "claims_and_prior_authorizations" => 0,
        other => 1 + MEMBER_CATEGORIES.iter().position(|k| *k == other).unwrap_or(MEMBER_CATEGORIES.len()),
    };
    let mut kinds: Vec<(String, u64)> = kinds.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
    kinds.sort_by_key(|(k, _)| order(k));
    kinds
}

fn day(ms: i64) -> Option<Day> {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok().map(|t| baton_vocab::views::day_of(t.date()))
}

fn transfer_view(
    transfer: Transfer,
    link: PayerLink,
    consent: Option<MemberConsent>,
    payer_name: String,
    progress: &Progress,
) -> TransferView {
    let count = |key: &str| {
        let dates = progress.category_dates.get(key);
        CategoryCount {
            key: key.to_owned(),
            count: progress.categories.get(key).copied().unwrap_or(0),
            first: dates.and_then(|(first, _)| day(*first)),
            last: dates.and_then(|(_, last)| day(*last)),
        }
    };
    let mut categories: Vec<CategoryCount> = MEMBER_CATEGORIES.iter().map(|key| count(key)).collect();
    for (key, n) in &progress.categories {
        if *n > 0 && !MEMBER_CATEGORIES.contains(&key.as_str()) && key != Category::Supporting.key() {
            categories.push(count(key));
        }
    }
    // "label:substance_use" and "classifier:substance_use" are one kind of care to the member.
    let mut excluded = BTreeMap::<String, u64>::new();
    for (reason, n) in &progress.excluded {
        let kind = reason.rsplit(':').next().unwrap_or(reason);
        *excluded.entry(kind.to_owned()).or_default() += n;
    }
    let deletion = consent.as_ref().and_then(|c| {
        Some(Deletion {
            deleted: u64::try_from(c.records_deleted?).unwrap_or(0),
            kept: c.records_kept.and_then(|k| u64::try_from(k).ok()).unwrap_or(0),
            shared: c.records_shared.and_then(|k| u64::try_from(k).ok()).unwrap_or(0),
        })
    });
    TransferView {
        active: transfer.state.is_active(),
        id: transfer.id,
        payer_id: link.payer_id,
        payer_name,
        state: transfer.state,
        received: progress.received(),
        stored: progress.records(),
        supporting: progress.supporting(),
        expected: progress.expected,
        categories,
        excluded_total: progress.excluded_total(),
        excluded: excluded.into_iter().collect(),
        not_permitted: progress.not_permitted.clone(),
        rejected: progress.rejected,
        consent_withdrawn: consent.as_ref().is_some_and(|c| c.withdrawn_at.is_some()),
        consent_until: consent.as_ref().and_then(|c| day(c.period_end)),
        consent_id: consent.map(|c| c.id),
        include_sensitive: link.include_sensitive,
        source_sensitive: link.source_sensitive,
        deletion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_records_are_told_by_the_kinds_members_know() {
        let all = PermissionRecords {
            deleted: 9,
            deleted_by_type: [
                ("ExplanationOfBenefit".to_owned(), 4),
                ("Encounter".to_owned(), 2),
                ("Observation".to_owned(), 1),
                ("DiagnosticReport".to_owned(), 1),
                ("Practitioner".to_owned(), 1),
            ]
            .into(),
            kept: 3,
            kept_by_type: [("Condition".to_owned(), 2), ("Provenance".to_owned(), 1)].into(),
            shared: 1,
            ..PermissionRecords::default()
        };
        let (records, supporting) = counted(&all);
        let kinds = by_kind(&records);
        let pair = |k: &str, n: u64| (k.to_owned(), n);
        assert_eq!(kinds, [pair("claims_and_prior_authorizations", 4), pair("visits", 2), pair("labs", 2)]);
        assert_eq!(kinds.iter().map(|(_, n)| n).sum::<u64>(), records.deleted);
        assert_eq!((records.deleted, supporting), (8, 1), "the clinician is counted apart");
        assert_eq!((records.kept, records.shared), (2, 2), "a Provenance that stays is not a record that stays");
    }
}
