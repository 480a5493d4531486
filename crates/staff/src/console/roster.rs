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
        let mut report =
            self.enrollment.commit(&preview, staff.id, now).await.map_err(|e| ConsoleError::Failed(e.to_string()))?;
        self.record_previous_coverages(&preview, &mut report, now).await?;
        let json = serde_json::to_string(&report).map_err(|e| ConsoleError::Failed(e.to_string()))?;
        self.store.finish_roster_import(id, &json, now).await?;
        let detail = format!(
            "created {}, updated {}, unchanged {}, failed {}, skipped {}",
            report.created, report.updated, report.unchanged, report.failed, report.skipped
        );
        self.audit(staff, Action::RosterCommit, None, &format!("roster {id}"), &detail).await
    }

    /// The previous coverage (and enrollment opt-in) of each member enrolled or updated, noted
    /// on their report line; a payer the directory does not know is said there.
    async fn record_previous_coverages(
        &self,
        preview: &roster::Preview,
        report: &mut CommitReport,
        now: Timestamp,
    ) -> Result<(), ConsoleError> {
        use baton_journey::{CoverageInput, JourneyError, OptInChoice};
        for entry in preview.valid() {
            let Some(previous) = &entry.previous else { continue };
            let Some(line) = report.lines.iter_mut().find(|l| l.member_id == entry.member_id) else { continue };
            let account = match line.outcome {
                MemberOutcome::Created { account }
                | MemberOutcome::Updated { account }
                | MemberOutcome::Unchanged { account } => baton_store::AccountId(account),
                MemberOutcome::Failed { .. } => continue,
            };
            // The roster may name the payer by its id here, its NAIC code or its name.
            let payer = self.journey.payers.resolve(&previous.payer).map_or_else(|| previous.payer.clone(), |p| p.id);
            let input = match CoverageInput::parse(
                &payer,
                &previous.member_id,
                previous.start,
                previous.end,
                previous.concurrent,
            ) {
                Ok(input) => input,
                Err(error) => {
                    line.notes.push(format!("previous coverage not recorded: {error}"));
                    continue;
                }
            };
            let at = |day: time::Date| Timestamp::from_millis(day.midnight().assume_utc().unix_timestamp() * 1000);
            let opt_in = previous.opt_in.as_ref().filter(|o| o.agreed).map(|o| OptInChoice {
                include_sensitive: o.include_sensitive,
                channel: baton_vocab::ConsentChannel::Enrollment,
                recorded_by: "roster".into(),
                at: at(o.on),
            });
            match self.journey.record_previous_coverage(account, &input, opt_in.as_ref(), "roster", now).await {
                Ok(coverage) => {
                    let declined = previous.opt_in.as_ref().is_some_and(|o| !o.agreed);
                    if declined {
                        self.journey.opt_out(account, &coverage.id, "roster", now).await.map_err(journey_failed)?;
                    }
                    line.notes.push(match (&opt_in, declined) {
                        (Some(_), _) => format!(
                            "previous coverage at {} recorded; opted in: records will be asked for",
                            previous.payer
                        ),
                        (None, true) => format!("previous coverage at {} recorded; opted out", previous.payer),
                        (None, false) => {
                            format!("previous coverage at {} recorded; not asked about opting in yet", previous.payer)
                        }
                    });
                }
                Err(JourneyError::UnknownPayer(payer)) => {
                    line.notes.push(format!("previous coverage not recorded: no payer {payer:?} in the directory"));
                }
                Err(JourneyError::WindowClosed { ended }) => {
                    line.notes
                        .push(format!("previous coverage recorded without opt-in: the time to ask ended on {ended}"));
                }
                Err(error) => return Err(journey_failed(error)),
            }
        }
        Ok(())
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
                notes: line.notes,
            });
        }
        Ok(rows)
    }
}

fn journey_failed(error: baton_journey::JourneyError) -> ConsoleError {
    ConsoleError::Failed(error.to_string())
}
