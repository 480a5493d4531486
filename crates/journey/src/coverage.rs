//! A new member's previous coverage and their opt-in to this plan asking that plan for their
//! records, server to server (CMS-0057-F Payer-to-Payer): recorded from the roster, by the
//! member, or by staff from a phone call or a paper form. Opting in gives the same HRex Consent
//! the member-mediated path stores; the member is then due at once (the first request goes out
//! well within the rule's week). Opting out withdraws it: nothing more is asked.

use baton_store::{AccountId, NewAuditEvent, PreviousCoverage, Timestamp};
use baton_vocab::{AuditAction, ConsentChannel, OptIn};
use time::Date;

use crate::{Journey, JourneyError, Payer};

/// A previous coverage as given (by the roster, the member or staff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageInput {
    pub payer_id: String,
    /// The member or subscriber id on the old card.
    pub member_id: String,
    pub start: Option<Date>,
    pub end: Option<Date>,
    /// The previous plan still covers them.
    pub concurrent: bool,
}

impl CoverageInput {
    /// Checked: a member id of at most 100 characters without control characters; an end not
    /// before the start.
    pub fn parse(
        payer_id: &str,
        member_id: &str,
        start: Option<Date>,
        end: Option<Date>,
        concurrent: bool,
    ) -> Result<Self, JourneyError> {
        let member_id = member_id.trim();
        if member_id.is_empty() || member_id.chars().count() > 100 || member_id.chars().any(char::is_control) {
            return Err(JourneyError::Invalid("member_id"));
        }
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            return Err(JourneyError::Invalid("coverage_end"));
        }
        Ok(Self { payer_id: payer_id.trim().to_owned(), member_id: member_id.to_owned(), start, end, concurrent })
    }
}

/// An opt-in as recorded: the sensitive-information choice, how it was given, by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptInChoice {
    pub include_sensitive: bool,
    pub channel: ConsentChannel,
    /// `member`, `roster`, or the staff member's username.
    pub recorded_by: String,
    /// When the member agreed (enrollment may be earlier than the recording).
    pub at: Timestamp,
}

impl Journey {
    /// A payer a coverage may name: any in the directory (offered to members or not).
    pub(crate) fn directory_payer(&self, payer_id: &str) -> Result<Payer, JourneyError> {
        self.payers
            .get(payer_id)
            .or_else(|| self.payers.withheld(payer_id))
            .ok_or_else(|| JourneyError::UnknownPayer(payer_id.to_owned()))
    }

    /// Records (or corrects) `member`'s coverage at a previous plan, and their opt-in when
    /// given; the opt-in already recorded stays otherwise.
    pub async fn record_previous_coverage(
        &self,
        member: AccountId,
        input: &CoverageInput,
        opt_in: Option<&OptInChoice>,
        actor: &str,
        now: Timestamp,
    ) -> Result<PreviousCoverage, JourneyError> {
        self.directory_payer(&input.payer_id)?;
        let existing = self.store.previous_coverages(member).await?.into_iter().find(|c| c.payer_id == input.payer_id);
        let coverage = match existing {
            Some(mut coverage) => {
                coverage.member_id = input.member_id.clone();
                coverage.coverage_start = input.start;
                coverage.coverage_end = input.end;
                coverage.concurrent = input.concurrent;
                coverage.updated_at = now.millis();
                coverage
            }
            None => PreviousCoverage {
                id: uuid::Uuid::new_v4().to_string(),
                member_account: member,
                payer_id: input.payer_id.clone(),
                member_id: input.member_id.clone(),
                coverage_start: input.start,
                coverage_end: input.end,
                concurrent: input.concurrent,
                opt_in: OptIn::Unknown,
                opted_at: None,
                opt_in_channel: None,
                opt_in_recorded_by: None,
                consent_id: None,
                next_request_at: None,
                last_request_id: None,
                last_exported_at: None,
                created_at: now.millis(),
                updated_at: now.millis(),
            },
        };
        let coverage = self.store.save_previous_coverage(&coverage).await?;
        self.audit(member, actor, AuditAction::CoverageRecorded, &coverage, "recorded", now).await?;
        match opt_in {
            Some(choice) => self.opt_in(member, &coverage.id, choice, now).await,
            None => Ok(coverage),
        }
    }

    /// `member` opts in for their coverage `coverage_id`: a Consent like the member-mediated
    /// path's (its channel and who recorded it kept), and the coverage due now.
    pub async fn opt_in(
        &self,
        member: AccountId,
        coverage_id: &str,
        choice: &OptInChoice,
        now: Timestamp,
    ) -> Result<PreviousCoverage, JourneyError> {
        let mut coverage = self.own_coverage(member, coverage_id).await?;
        let payer = self.directory_payer(&coverage.payer_id)?;
        if let Some(previous) = &coverage.consent_id {
            self.store.withdraw_consent(previous, now).await?;
        }
        let given = self
            .give_consent(member, &payer, choice.include_sensitive, coverage.concurrent, choice.at.millis(), now)
            .await?;
        self.store.insert_consent(&given.stored(member, &payer.id, choice.channel, now)).await?;
        coverage.opt_in = OptIn::In;
        coverage.opted_at = Some(choice.at.millis());
        coverage.opt_in_channel = Some(choice.channel);
        coverage.opt_in_recorded_by = Some(choice.recorded_by.clone());
        coverage.consent_id = Some(given.id);
        coverage.next_request_at = Some(now.millis());
        coverage.updated_at = now.millis();
        let coverage = self.store.save_previous_coverage(&coverage).await?;
        let detail = format!(
            "opted in by {} ({}), sensitive {}",
            choice.channel,
            choice.recorded_by,
            if choice.include_sensitive { "included" } else { "left out" }
        );
        self.audit(member, &choice.recorded_by, AuditAction::OptInRecorded, &coverage, &detail, now).await?;
        Ok(coverage)
    }

    /// `member` opts out (or withdraws their opt-in): the Consent is withdrawn and nothing more
    /// is asked; transfers under way stop at their next step.
    pub async fn opt_out(
        &self,
        member: AccountId,
        coverage_id: &str,
        recorded_by: &str,
        now: Timestamp,
    ) -> Result<PreviousCoverage, JourneyError> {
        let mut coverage = self.own_coverage(member, coverage_id).await?;
        if let Some(consent) = &coverage.consent_id {
            self.store.withdraw_consent(consent, now).await?;
        }
        coverage.opt_in = OptIn::Out;
        coverage.opted_at = Some(now.millis());
        coverage.opt_in_recorded_by = Some(recorded_by.to_owned());
        coverage.next_request_at = None;
        coverage.updated_at = now.millis();
        let coverage = self.store.save_previous_coverage(&coverage).await?;
        self.audit(member, recorded_by, AuditAction::OptInRecorded, &coverage, "opted out", now).await?;
        Ok(coverage)
    }

    /// A member's previous coverages.
    pub async fn previous_coverages(&self, member: AccountId) -> Result<Vec<PreviousCoverage>, JourneyError> {
        Ok(self.store.previous_coverages(member).await?)
    }

    async fn own_coverage(&self, member: AccountId, coverage_id: &str) -> Result<PreviousCoverage, JourneyError> {
        self.store
            .previous_coverage(coverage_id)
            .await?
            .filter(|c| c.member_account == member)
            .ok_or(JourneyError::Invalid("coverage"))
    }

    async fn audit(
        &self,
        member: AccountId,
        actor: &str,
        action: AuditAction,
        coverage: &PreviousCoverage,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), JourneyError> {
        self.store
            .record_audit(&NewAuditEvent {
                at: now,
                actor_account: None,
                actor: actor.to_owned(),
                action: action.to_string(),
                member_account: Some(member),
                subject: format!("payer {}", coverage.payer_id),
                detail: detail.to_owned(),
            })
            .await?;
        Ok(())
    }
}
