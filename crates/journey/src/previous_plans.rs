//! What a member sees of their previous plans on the Payer-to-Payer path: each coverage, their
//! opt-in, and where this plan's asking stands (the read model of `/member/previous-plans`).

use baton_store::{AccountId, Timestamp};
use baton_vocab::views::requests::{MemberRequestView, PreviousPlanView, PreviousPlansPage};
use baton_vocab::views::{Day, day_of};
use baton_vocab::{ConsentPolicy, day};

use crate::{Journey, JourneyError};

fn of_millis(ms: i64) -> Day {
    day_of(day::of_millis(ms))
}

impl Journey {
    /// The member's previous plans page.
    pub async fn previous_plans_page(
        &self,
        member: AccountId,
        now: Timestamp,
    ) -> Result<PreviousPlansPage, JourneyError> {
        let store = &self.store;
        let requests = store.member_requests(member).await?;
        let mut plans = vec![];
        for coverage in store.previous_coverages(member).await? {
            let consent = match &coverage.consent_id {
                Some(id) => store.consent(id).await?,
                None => None,
            };
            let in_force = consent.as_ref().filter(|c| c.in_force(now));
            let request = requests.iter().find(|(_, m)| m.coverage_id == coverage.id).map(|(r, m)| MemberRequestView {
                request_id: r.id.clone(),
                asked_on: of_millis(r.created_at),
                state: r.state,
                result: m.result,
                transfer_id: m.transfer_id.clone(),
            });
            plans.push(PreviousPlanView {
                payer_name: self.payers.known(&coverage.payer_id).map_or_else(|| coverage.payer_id.clone(), |p| p.name),
                coverage_id: coverage.id,
                payer_id: coverage.payer_id,
                member_id: coverage.member_id,
                start: coverage.coverage_start.map(day_of),
                end: coverage.coverage_end.map(day_of),
                concurrent: coverage.concurrent,
                opt_in: coverage.opt_in,
                opted_on: coverage.opted_at.map(of_millis),
                channel: coverage.opt_in_channel,
                recorded_by: coverage.opt_in_recorded_by,
                include_sensitive: in_force.map(|c| c.policy == ConsentPolicy::Sensitive),
                until: in_force.map(|c| of_millis(c.period_end)),
                request,
                next_on: coverage.next_request_at.map(|at| of_millis(at.max(now.millis()))),
            });
        }
        let payers = self.payers.all_known().into_iter().map(|p| (p.id, p.name)).collect();
        let until = self.consent_until(member, now).await.ok().map(day_of);
        Ok(PreviousPlansPage { plan_name: self.plan_name.clone(), plans, payers, until })
    }
}
