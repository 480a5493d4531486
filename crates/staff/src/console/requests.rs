//! This plan's requests to previous plans (the Payer-to-Payer API, server to server), for staff:
//! the latest requests and their counts, one request with each member's result, retry and
//! cancel, the opted-in members not asked for yet, asking again for one member, and an opt-in
//! staff took by phone or on paper.

use baton_journey::{CoverageInput, JourneyError, OptInChoice};
use baton_store::{Account, P2pRequest, Timestamp};
use baton_transfer::Progress;
use baton_vocab::views::Day;
use baton_vocab::views::requests::{RequestMemberView, RequestView, RequestsPage, WaitingMember};
use baton_vocab::{ConsentChannel, OptIn, day};

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;

/// Requests on the list.
const LISTED: u32 = 50;
/// Waiting members on the list.
const WAITING: u32 = 200;
const DAY_MS: i64 = 86_400_000;

/// An opt-in staff took by phone or on paper, as the form has it.
#[derive(Debug, Clone, Default)]
pub struct StaffOptIn {
    /// The previous plan (a directory id).
    pub payer: String,
    /// The member or subscriber id on the old card.
    pub member_id: String,
    /// `YYYY-MM-DD`, or empty.
    pub start: String,
    pub end: String,
    pub concurrent: bool,
    /// `phone` or `paper`.
    pub channel: String,
    /// `include` or `exclude`: required, nothing is pre-selected.
    pub sensitive: String,
    /// The day the member agreed, `YYYY-MM-DD`; empty: today.
    pub agreed_on: String,
}

/// What staff do to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAction {
    /// A failed or cancelled request runs again from where it stopped.
    Retry,
    /// An unfinished request stops, with the transfers it started that are still queued.
    Cancel,
}

fn of_millis(ms: i64) -> Day {
    baton_vocab::views::day_of(day::of_millis(ms))
}

impl Console {
    /// The latest requests (of one previous plan when `payer` is given) and the members who
    /// opted in but no request has carried yet, oldest first.
    pub async fn requests(&self, staff: &Account, payer: &str) -> Result<RequestsPage, ConsoleError> {
        let payer = Some(payer.trim()).filter(|p| !p.is_empty());
        let mut requests = vec![];
        for request in self.store.requests(payer, LISTED).await? {
            requests.push(self.request_view(staff, request, false).await?);
        }
        let now = Timestamp::now().millis();
        let mut waiting = vec![];
        for coverage in self.store.coverages_never_requested(WAITING).await? {
            if payer.is_some_and(|p| p != coverage.payer_id) {
                continue;
            }
            let name = self.store.account_by_id(coverage.member_account).await?.map(|a| a.display_name);
            let since = coverage.opted_at.unwrap_or(coverage.created_at);
            waiting.push(WaitingMember {
                account: coverage.member_account.0,
                name: name.unwrap_or_default(),
                payer_name: self.payer_name(&coverage.payer_id),
                opted_on: coverage.opted_at.map(of_millis),
                days: (now - since).max(0) / DAY_MS,
                coverage_id: coverage.id,
            });
        }
        self.audit(staff, Action::RequestList, None, &format!("payer={}", payer.unwrap_or("")), "").await?;
        Ok(RequestsPage {
            admin: is_admin(staff),
            payers: self.journey.payers.all_known().into_iter().map(|p| (p.id, p.name)).collect(),
            requests,
            waiting,
        })
    }

    /// One request with each member's result and the records filed for them.
    pub async fn request(&self, staff: &Account, id: &str) -> Result<RequestView, ConsoleError> {
        let request = self.store.request(id).await?.ok_or(ConsoleError::NotFound)?;
        let view = self.request_view(staff, request, true).await?;
        self.audit(staff, Action::RequestView, None, &format!("request {id}"), "").await?;
        Ok(view)
    }

    async fn request_view(
        &self,
        staff: &Account,
        request: P2pRequest,
        with_members: bool,
    ) -> Result<RequestView, ConsoleError> {
        let store = &self.store;
        let transfers = store.request_transfers(&request.id).await?;
        let stored = |transfer: &str| {
            transfers.iter().find(|t| t.id == transfer).map(|t| (t.state, Progress::from_json(&t.progress).records()))
        };
        let records = transfers.iter().map(|t| Progress::from_json(&t.progress).records()).sum();
        let mut members_list = vec![];
        if with_members {
            for member in store.request_members(&request.id).await? {
                let name = store.account_by_id(member.member_account).await?.map(|a| a.display_name);
                let filed = member.transfer_id.as_deref().and_then(stored);
                members_list.push(RequestMemberView {
                    account: member.member_account.0,
                    name: name.unwrap_or_default(),
                    result: member.result,
                    transfer_state: filed.map(|(state, _)| state),
                    records: filed.map_or(0, |(_, n)| n),
                    transfer_id: member.transfer_id,
                });
            }
        }
        Ok(RequestView {
            admin: is_admin(staff),
            payer_name: self.payer_name(&request.payer_id),
            problems: baton_transfer::request::problems(&request.checkpoint),
            state: request.state,
            created_on: of_millis(request.created_at),
            members: request.members,
            matched: request.matched,
            not_matched: request.not_matched,
            constrained: request.constrained,
            lines: request.lines,
            rejected: request.rejected,
            records,
            since: request.since,
            note: request.progress_note,
            error: request.error,
            members_list,
            payer_id: request.payer_id,
            id: request.id,
        })
    }

    /// Retries or cancels a request; whether it was in a state that allows it.
    pub async fn request_action(&self, staff: &Account, id: &str, action: RequestAction) -> Result<bool, ConsoleError> {
        let store = &self.store;
        store.request(id).await?.ok_or(ConsoleError::NotFound)?;
        let now = Timestamp::now();
        let by = format!("staff {}", staff.username);
        let (changed, word) = match action {
            RequestAction::Retry => (store.retry_request(id, now).await?, "retried"),
            RequestAction::Cancel => (store.cancel_request(id, &by, now).await?, "cancelled"),
        };
        let detail = if changed { word } else { "refused: not in a state that allows it" };
        self.audit(staff, Action::RequestChanged, None, &format!("request {id}"), detail).await?;
        Ok(changed)
    }

    /// Asks again for one member (their next request goes out at the next scheduling tick);
    /// `false` when they have not opted in.
    pub async fn ask_again(&self, staff: &Account, member: &str, coverage_id: &str) -> Result<bool, ConsoleError> {
        let account = self.member(member).await?;
        let coverage = self
            .store
            .previous_coverage(coverage_id)
            .await?
            .filter(|c| c.member_account == account.id)
            .ok_or(ConsoleError::NotFound)?;
        let now = Timestamp::now();
        let asked = coverage.opt_in == OptIn::In;
        if asked {
            self.store.schedule_coverage(&coverage.id, Some(now.millis()), None, now).await?;
        }
        let detail = if asked { "asked again" } else { "refused: the member has not opted in" };
        self.audit(staff, Action::RequestChanged, Some(account.id), &format!("payer {}", coverage.payer_id), detail)
            .await?;
        Ok(asked)
    }

    /// Records a previous coverage and the opt-in a member gave by phone or on paper (the
    /// channel and who recorded it are kept with the Consent).
    pub async fn record_opt_in(&self, staff: &Account, member: &str, form: &StaffOptIn) -> Result<(), ConsoleError> {
        let account = self.member(member).await?;
        let date = |text: &str, field: &'static str| match text.trim() {
            "" => Ok(None),
            t => day::parse(t).map(Some).ok_or(ConsoleError::Invalid(field)),
        };
        let (start, end) = (date(&form.start, "start")?, date(&form.end, "end")?);
        let channel = match form.channel.as_str() {
            "phone" => ConsentChannel::Phone,
            "paper" => ConsentChannel::Paper,
            _ => return Err(ConsoleError::Invalid("channel")),
        };
        let include_sensitive = match form.sensitive.as_str() {
            "include" => true,
            "exclude" => false,
            _ => return Err(ConsoleError::Invalid("sensitive")),
        };
        let now = Timestamp::now();
        let at = match date(&form.agreed_on, "agreed_on")? {
            Some(agreed) if agreed > day::of_millis(now.millis()) => return Err(ConsoleError::Invalid("agreed_on")),
            Some(agreed) => Timestamp::from_millis(day::start_millis(agreed)),
            None => now,
        };
        let input =
            CoverageInput::parse(&form.payer, &form.member_id, start, end, form.concurrent).map_err(|e| match e {
                JourneyError::Invalid("coverage_end") => ConsoleError::Invalid("end"),
                _ => ConsoleError::Invalid("member_id"),
            })?;
        let choice = OptInChoice { include_sensitive, channel, recorded_by: staff.username.clone(), at };
        match self.journey.record_previous_coverage(account.id, &input, Some(&choice), &staff.username, now).await {
            Ok(_) => Ok(()),
            Err(JourneyError::UnknownPayer(_)) => Err(ConsoleError::Invalid("payer")),
            Err(JourneyError::WindowClosed { .. }) => Err(ConsoleError::Invalid("closed")),
            Err(error) => Err(ConsoleError::Failed(error.to_string())),
        }
    }
}
