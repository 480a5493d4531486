//! The roster import: an upload is kept, previewed line by line, and committed once.

use baton_enrollment::{CommitReport, Format, MemberOutcome, roster};
use baton_store::{Account, AccountId, RosterImport, Timestamp};
use baton_vocab::day;
use baton_vocab::views::console::{PreviewRow, ReportRow, RosterCounts, RosterImportView, RosterOutcome};

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;

impl Console {
    /// Keeps an uploaded roster for its preview; its id. `file_name` is empty for pasted text.
    pub async fn upload_roster(
        &self,
        staff: &Account,
        file_name: &str,
        content: String,
    ) -> Result<String, ConsoleError> {
        let import = RosterImport {
            id: uuid::Uuid::new_v4().to_string(),
            format: Format::detect(&content).as_str().to_owned(),
            file_name: file_name.chars().filter(|c| !c.is_control()).take(200).collect(),
            content,
            created_by: staff.id.0,
            created_at: Timestamp::now().millis(),
            committed_at: None,
            report: None,
        };
        self.store.insert_roster_import(&import).await?;
        let detail = format!("{} bytes, {}", import.content.len(), import.format);
        self.audit(staff, Action::RosterUpload, None, &format!("roster {}", import.id), &detail).await?;
        Ok(import.id)
    }

    /// An upload's preview, and once committed what the commit did for each member.
    pub async fn roster_import(&self, staff: &Account, id: &str) -> Result<RosterImportView, ConsoleError> {
        let import = self.store.roster_import(id).await?.ok_or(ConsoleError::NotFound)?;
        let format = Format::parse(&import.format).unwrap_or(Format::Csv);
        let (rows, file_error) = match roster::parse(format, &import.content) {
            Ok(preview) => (preview.rows, None),
            Err(error) => (vec![], Some(error.to_string())),
        };
        let valid = rows.iter().filter(|r| r.entry.is_some()).count();
        let invalid = rows.len() - valid;
        let committed = import.report.as_deref().and_then(|r| serde_json::from_str::<CommitReport>(r).ok());
        let (report, counts) = match committed {
            Some(report) => {
                let counts = RosterCounts {
                    created: report.created,
                    updated: report.updated,
                    unchanged: report.unchanged,
                    failed: report.failed,
                };
                (Some(self.report_rows(report).await?), Some(counts))
            }
            None => (None, None),
        };
        self.audit(staff, Action::RosterView, None, &format!("roster {id}"), "").await?;
        Ok(RosterImportView {
            admin: is_admin(staff),
            id: import.id,
            file_name: import.file_name,
            format: import.format,
            file_error,
            rows: rows
                .into_iter()
                .map(|row| {
                    let entry = row.entry.as_ref();
                    PreviewRow {
                        number: row.number,
                        member_id: row.member_id.unwrap_or_default(),
                        name: entry.map(|e| e.display_name()).unwrap_or_default(),
                        birth_date: entry.map(|e| day::format(e.birth_date)).unwrap_or_default(),
                        coverage_start: entry.map(|e| day::format(e.coverage_start)).unwrap_or_default(),
                        plan: entry.map(|e| e.plan.clone()).unwrap_or_default(),
                        errors: row.errors,
                    }
                })
                .collect(),
            valid,
            invalid,
            committed_at: import.committed_at.map(day::utc),
            report,
            counts,
        })
    }

    /// Writes the previewed roster's valid lines, once: committing an upload again does nothing.
    pub async fn commit_roster(&self, staff: &Account, id: &str) -> Result<(), ConsoleError> {
        let import = self.store.roster_import(id).await?.ok_or(ConsoleError::NotFound)?;
        if import.committed_at.is_some() {
            return Ok(());
        }
        let format = Format::parse(&import.format).unwrap_or(Format::Csv);
        let preview = roster::parse(format, &import.content).map_err(|_| ConsoleError::Invalid("file"))?;
        let now = Timestamp::now();
        let report =
            self.enrollment.commit(&preview, staff.id, now).await.map_err(|e| ConsoleError::Failed(e.to_string()))?;
        let json = serde_json::to_string(&report).map_err(|e| ConsoleError::Failed(e.to_string()))?;
        self.store.finish_roster_import(id, &json, now).await?;
        let detail = format!(
            "created {}, updated {}, unchanged {}, failed {}, skipped {}",
            report.created, report.updated, report.unchanged, report.failed, report.skipped
        );
        self.audit(staff, Action::RosterCommit, None, &format!("roster {id}"), &detail).await
    }

    /// Each committed line, with the invitation link of a member the commit created.
    async fn report_rows(&self, report: CommitReport) -> Result<Vec<ReportRow>, ConsoleError> {
        let now = Timestamp::now();
        let mut rows = Vec::with_capacity(report.lines.len());
        for line in report.lines {
            let (outcome, account, reason) = match line.outcome {
                MemberOutcome::Created { account } => (RosterOutcome::Created, Some(account), None),
                MemberOutcome::Updated { account } => (RosterOutcome::Updated, Some(account), None),
                MemberOutcome::Unchanged { account } => (RosterOutcome::Unchanged, Some(account), None),
                MemberOutcome::Failed { reason } => (RosterOutcome::Failed, None, Some(reason)),
            };
            let invitation_link = match account {
                Some(account) if outcome == RosterOutcome::Created => self
                    .enrollment
                    .invitations
                    .status(AccountId(account), now)
                    .await
                    .map_err(|e| ConsoleError::Failed(e.to_string()))?
                    .and_then(|s| s.link),
                _ => None,
            };
            rows.push(ReportRow {
                member_id: line.member_id,
                name: line.name,
                outcome,
                account,
                reason,
                invitation_link,
            });
        }
        Ok(rows)
    }
}
