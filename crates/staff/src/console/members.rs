//! Finding members, and everything about one.

use baton_store::{Account, MemberQuery, ResourceQuery, Timestamp, TransferFilter};
use baton_transfer::Progress;
use baton_vocab::day;
use baton_vocab::views::staff::{ConsentRow, LinkRow, MemberDetail, MemberRow, MemberSearch, TransferLine};

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;

/// Members per page of a search.
const PAGE: u32 = 50;

impl Console {
    /// Members whose name, member id or username matches `text`, born on `birth` (`YYYY-MM-DD`,
    /// or empty), page `page` of 50.
    pub async fn search_members(
        &self,
        staff: &Account,
        text: &str,
        birth: &str,
        page: u32,
    ) -> Result<MemberSearch, ConsoleError> {
        let birth = birth.trim();
        let birth_date = match birth {
            "" => None,
            b => Some(day::parse(b).ok_or(ConsoleError::Invalid("birth"))?),
        };
        let found = self
            .store
            .search_members(&MemberQuery {
                text: Some(text.to_owned()),
                birth_date,
                limit: PAGE + 1,
                offset: page.saturating_mul(PAGE),
            })
            .await?;
        let shown = found.len().min(PAGE as usize);
        self.audit(staff, Action::MemberSearch, None, &format!("q={text} birth={birth}"), &format!("{shown} found"))
            .await?;
        Ok(MemberSearch {
            admin: is_admin(staff),
            more: found.len() > PAGE as usize,
            rows: found.into_iter().take(PAGE as usize).map(member_row).collect(),
        })
    }

    /// One member: coverage, consents (with their HRex Consent), links, transfers, what this
    /// plan holds, and their invitation.
    pub async fn member_detail(&self, staff: &Account, id: &str) -> Result<MemberDetail, ConsoleError> {
        let store = &self.store;
        let member = self.member(id).await?;
        let invitation = self
            .enrollment
            .invitations
            .status(member.id, Timestamp::now())
            .await
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        let consents = store
            .consents_of(member.id)
            .await?
            .into_iter()
            .map(|c| ConsentRow {
                payer: self.payer_name(&c.payer_id),
                policy: c.policy,
                given_at: day::utc(c.given_at),
                until: day::utc(c.period_end),
                withdrawn_at: c.withdrawn_at.map(day::utc),
                json: serde_json::from_str::<serde_json::Value>(&c.resource)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(c.resource),
                id: c.id,
            })
            .collect();
        let links = store
            .links_of(member.id)
            .await?
            .into_iter()
            .map(|l| LinkRow {
                payer: self.payer_name(&l.payer_id),
                state: l.state,
                created_at: day::utc(l.created_at),
            })
            .collect();
        let filter = TransferFilter { member_account: Some(member.id), limit: 100, ..TransferFilter::default() };
        let transfers = store
            .list_transfer_rows(&filter)
            .await?
            .into_iter()
            .map(|row| TransferLine {
                payer: self.payer_name(&row.payer_id),
                state: row.transfer.state,
                created_at: day::utc(row.transfer.created_at),
                stored: Progress::from_json(&row.transfer.progress).records(),
                id: row.transfer.id,
            })
            .collect();
        // Records as every screen counts them (care providers and record sources apart).
        let record_types = baton_fhir::exchange::record_types().into_iter().map(str::to_owned).collect();
        let received = store
            .count_resources(&ResourceQuery {
                member_account: Some(member.id),
                resource_types: record_types,
                ..ResourceQuery::default()
            })
            .await?;
        let plan = self.enrollment.plan_name_of(&member).await.map_err(ConsoleError::Store)?;
        let previous = self
            .journey
            .previous_plans_page(member.id, Timestamp::now())
            .await
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        self.audit(staff, Action::MemberView, Some(member.id), &format!("member {}", member.id.0), "").await?;
        Ok(MemberDetail {
            admin: is_admin(staff),
            account: member.id.0,
            has_password: member.has_password(),
            name: member.display_name,
            username: member.username,
            member_id: member.member_id.unwrap_or_default(),
            birth_date: member.birth_date.map(day::format).unwrap_or_default(),
            coverage_start: member.coverage_start.map(day::format).unwrap_or_default(),
            plan,
            invitation_link: invitation.as_ref().and_then(|i| i.link.clone()),
            invitation_expires: invitation.as_ref().filter(|i| i.link.is_some()).map(|i| day::utc(i.expires_at)),
            consents,
            links,
            transfers,
            received,
            previous: previous.plans,
            payers: previous.payers,
        })
    }

    /// A new invitation link for a member who has no password yet (earlier links stop working);
    /// the member's account id. A member with a password keeps it: only an admin can reset their
    /// access ([`Console::reset_access`]).
    pub async fn issue_invitation(&self, staff: &Account, member: &str) -> Result<i64, ConsoleError> {
        let account = self.member(member).await?;
        if account.has_password() {
            return Err(ConsoleError::Invalid("has_password"));
        }
        self.enrollment
            .invitations
            .issue(account.id, Some(staff.id), Timestamp::now())
            .await
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        self.audit(staff, Action::InvitationCreate, Some(account.id), &format!("member {}", account.id.0), "").await?;
        Ok(account.id.0)
    }
}

/// Whether the member was told their access was reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// By email, to the address on file.
    Emailed,
    /// There is no email address on file.
    NoAddress,
    /// The email could not be sent (the relay refused it, or was not reachable).
    Failed,
}

impl Notified {
    pub fn as_str(self) -> &'static str {
        match self {
            Notified::Emailed => "emailed",
            Notified::NoAddress => "no_address",
            Notified::Failed => "failed",
        }
    }
}

impl Console {
    /// An admin resets a member's access, for a reason they give: the password goes (the member
    /// can no longer sign in with it), a new invitation link is made, and the member is told by
    /// email where an address is on file (no reason, no health details in it). The reason and
    /// whether the member was told are in the audit log. Returns the member's account id.
    pub async fn reset_access(
        &self,
        admin: &Account,
        member: &str,
        reason: &str,
    ) -> Result<(i64, Notified), ConsoleError> {
        if !admin.roles.has(baton_vocab::Role::Admin) {
            return Err(ConsoleError::Forbidden);
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err(ConsoleError::Invalid("reason"));
        }
        let account = self.member(member).await?;
        self.store.clear_password(account.id).await?;
        self.enrollment
            .invitations
            .issue(account.id, Some(admin.id), Timestamp::now())
            .await
            .map_err(|e| ConsoleError::Failed(e.to_string()))?;
        let notified = match self.member_email(&account).await? {
            None => Notified::NoAddress,
            Some(address) => match self.mailer.send(reset_email(&address, &self.journey.plan_name)).await {
                Ok(()) => Notified::Emailed,
                Err(error) => {
                    tracing::warn!(%error, member = account.id.0, "the access-reset email was not sent");
                    Notified::Failed
                }
            },
        };
        let subject = format!("member {}", account.id.0);
        let detail = format!("{reason} (member told: {})", notified.as_str());
        self.audit(admin, Action::MemberAccessReset, Some(account.id), &subject, &detail).await?;
        Ok((account.id.0, notified))
    }

    /// The email address on the member's own record (from the roster), if any.
    async fn member_email(&self, account: &Account) -> Result<Option<String>, ConsoleError> {
        let Some(patient) = &account.patient_id else { return Ok(None) };
        let Some(stored) = self.store.read_resource("Patient", patient).await? else { return Ok(None) };
        let patient: serde_json::Value = serde_json::from_str(&stored.body).unwrap_or_default();
        Ok(patient["telecom"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["system"] == "email")
            .and_then(|t| t["value"].as_str())
            .map(str::to_owned))
    }
}

/// The email telling a member their access was reset, in English and Spanish.
fn reset_email(to: &str, plan: &str) -> baton_mail::Email {
    let day = day::format(time::OffsetDateTime::now_utc().date());
    baton_mail::Email {
        to: to.to_owned(),
        subject: format!("Your access to {plan} was reset / Se restableció su acceso a {plan}"),
        body: format!(
            "An administrator at {plan} reset your access to your member account on {day}. Your old password no \
             longer works. If you asked for this, use the new link {plan} gave you to choose a password. If you did \
             not ask for this, call {plan}'s member services right away.\n\n\
             Un administrador de {plan} restableció el acceso a su cuenta de miembro el {day}. Su contraseña \
             anterior ya no funciona. Si usted lo pidió, use el nuevo enlace que {plan} le dio para elegir una \
             contraseña. Si no lo pidió, llame de inmediato a servicios para miembros de {plan}.\n"
        ),
    }
}

fn member_row(a: Account) -> MemberRow {
    MemberRow {
        account: a.id.0,
        name: a.display_name,
        member_id: a.member_id.unwrap_or_default(),
        birth_date: a.birth_date.map(day::format).unwrap_or_default(),
        coverage_start: a.coverage_start.map(day::format).unwrap_or_default(),
    }
}
