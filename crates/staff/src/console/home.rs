//! The staff home: members, transfers by state, the last 30 days, members late to opt in.

use baton_store::Account;
use baton_vocab::Role;
use baton_vocab::day;
use baton_vocab::views::staff::{DayBar, LateMember, StaffHome};
use time::Date;

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;
use crate::dashboard;

/// Days shown in the chart.
pub const CHART_DAYS: u16 = 30;

impl Console {
    pub async fn home(&self, staff: &Account, today: Date) -> Result<StaffHome, ConsoleError> {
        let store = &self.store;
        let members = store.count_accounts_with_role(Role::Member).await?;
        let states = store.transfer_state_counts().await?;
        let first = today - time::Duration::days(i64::from(CHART_DAYS) - 1);
        let since = baton_store::Timestamp::from_millis(day::start_millis(first));
        let times = store.transfer_times_since(since).await?;
        let days = dashboard::per_day(&times, today, CHART_DAYS)
            .into_iter()
            .map(|d| DayBar { day: day::format(d.day), started: d.started, completed: d.completed, failed: d.failed })
            .collect();
        let deadline = dashboard::opt_in_deadline_passed_for(today);
        let late: Vec<LateMember> = store
            .members_without_consent(deadline, 50)
            .await?
            .into_iter()
            .map(|a| LateMember {
                account: a.id.0,
                name: a.display_name,
                member_id: a.member_id.unwrap_or_default(),
                coverage_start: a.coverage_start.map(day::format).unwrap_or_default(),
            })
            .collect();
        self.audit(staff, Action::DashboardView, None, "", &format!("{} late members listed", late.len())).await?;
        Ok(StaffHome { display_name: staff.display_name.clone(), admin: is_admin(staff), members, states, days, late })
    }
}
