//! Reading the export's NDJSON files: streamed, each line staged for the member whose Patient
//! it names (or shared: Organizations and the like), committed every few hundred lines with
//! the file and line reached. A line that names a Patient this request did not match is never
//! staged (it would be another member's record); a line cut off is counted and said.

use std::collections::HashMap;

use baton_fhir::exchange::is_compartment_type;
use baton_store::{STAGED_SHARED, StagedLine};
use baton_vocab::{MatchResult, RequestState};
use serde_json::Value;

use super::remote::{self, RemoteError};
use super::{Outcome, OutputFile, RequestEnd, Run, Step};

/// Where Provenance of records (not of a Patient) waits until every file is read and the
/// member its targets belong to is known.
pub(super) const PROVENANCE: &str = "~provenance";

/// One line, read.
enum Line {
    Staged(StagedLine),
    /// Not a resource of a member asked for: why.
    Rejected(String),
}

impl Run<'_> {
    pub(super) async fn download(
        &mut self,
        files: &[OutputFile],
        requires_token: bool,
        transaction_time: Option<String>,
        file: usize,
        line: u64,
    ) -> Outcome {
        let Some(current) = files.get(file) else {
            self.place.step = Step::Deliver { transaction_time, routed: false };
            self.note = Some("filing each member's records".into());
            return self.save(RequestState::Delivering).await;
        };
        let next_file = Step::Download {
            files: files.to_vec(),
            requires_token,
            transaction_time: transaction_time.clone(),
            file: file + 1,
            line: 0,
        };
        let token = if requires_token {
            if !self.same_origin(&current.url) {
                self.place.note(format!(
                    "a file on another server ({}) was not read: this plan's token goes only to the plan's own server",
                    current.url
                ));
                self.place.step = next_file;
                let state = self.request.state;
                return self.save(state).await;
            }
            Some(self.token().await?)
        } else {
            None
        };
        let routes = self.routes().await?;
        let mut response = remote::open_file(&self.engine.http, &current.url, token.as_deref())
            .await
            .map_err(|e| self.back_off(&e))?;
        let per_commit = self.engine.config.requests.lines_per_commit.max(1);
        let mut pending: Vec<u8> = vec![];
        let mut number: u64 = 0;
        let mut staged = vec![];
        let mut rejected = 0i64;
        let mut read = 0i64;
        loop {
            let chunk = match response.chunk().await {
                Ok(chunk) => chunk,
                Err(error) => {
                    // What was staged holds; the file is read again from the line reached.
                    self.stage(
                        &mut staged,
                        &mut read,
                        &mut rejected,
                        files,
                        requires_token,
                        &transaction_time,
                        file,
                        number,
                    )
                    .await?;
                    return Err(
                        self.back_off(&RemoteError::Unavailable(format!("reading {} stopped: {error}", current.url)))
                    );
                }
            };
            let end = chunk.is_none();
            if let Some(bytes) = chunk {
                pending.extend_from_slice(&bytes);
            }
            let mut lines: Vec<Vec<u8>> = vec![];
            while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
                let rest = pending.split_off(newline + 1);
                lines.push(std::mem::replace(&mut pending, rest));
            }
            if end && !pending.iter().all(u8::is_ascii_whitespace) {
                lines.push(std::mem::take(&mut pending));
            }
            for raw in lines {
                let text = String::from_utf8_lossy(&raw);
                if text.trim().is_empty() {
                    continue;
                }
                number += 1;
                if number <= line {
                    continue;
                }
                read += 1;
                match route(&text, &routes, &self.fhir_base) {
                    Line::Staged(line) => staged.push(line),
                    Line::Rejected(why) => {
                        rejected += 1;
                        self.place.note(format!("{} line {number}: {why}", current.resource_type_or_file()));
                    }
                }
                if staged.len() + rejected as usize >= per_commit {
                    self.stage(
                        &mut staged,
                        &mut read,
                        &mut rejected,
                        files,
                        requires_token,
                        &transaction_time,
                        file,
                        number,
                    )
                    .await?;
                }
            }
            if end {
                break;
            }
        }
        self.stage(&mut staged, &mut read, &mut rejected, files, requires_token, &transaction_time, file, number)
            .await?;
        self.place.step = next_file;
        let state = self.request.state;
        self.save(state).await
    }

    /// Commits the lines read so far with the place after them.
    #[allow(clippy::too_many_arguments)]
    async fn stage(
        &mut self,
        staged: &mut Vec<StagedLine>,
        read: &mut i64,
        rejected: &mut i64,
        files: &[OutputFile],
        requires_token: bool,
        transaction_time: &Option<String>,
        file: usize,
        line: u64,
    ) -> Outcome {
        if *read == 0 {
            return Ok(());
        }
        self.place.step = Step::Download {
            files: files.to_vec(),
            requires_token,
            transaction_time: transaction_time.clone(),
            file,
            line,
        };
        let checkpoint = serde_json::to_string(&self.place).unwrap_or_default();
        let owner = &self.engine.config.worker_id;
        let saved = self
            .engine
            .store
            .stage_lines(&self.request.id, owner, staged, *read, *rejected, &checkpoint, Self::now())
            .await
            .map_err(|e| RequestEnd::Failed(e.to_string()))?;
        if !saved {
            return Err(RequestEnd::LeaseLost);
        }
        self.request.lines += *read;
        self.request.rejected += *rejected;
        staged.clear();
        *read = 0;
        *rejected = 0;
        Ok(())
    }

    /// The matched members, by their Patient id at the previous plan.
    async fn routes(&self) -> Result<HashMap<String, String>, RequestEnd> {
        let members =
            self.engine.store.request_members(&self.request.id).await.map_err(|e| RequestEnd::Failed(e.to_string()))?;
        Ok(members
            .into_iter()
            .filter(|m| m.result == Some(MatchResult::Matched))
            .filter_map(|m| Some((m.old_patient?, m.coverage_id)))
            .collect())
    }
}

impl OutputFile {
    fn resource_type_or_file(&self) -> &str {
        if self.resource_type.is_empty() { "a file" } else { &self.resource_type }
    }
}

/// Which member a line is for, or why it is for none.
fn route(text: &str, routes: &HashMap<String, String>, base: &str) -> Line {
    let resource: Value = match serde_json::from_str(text) {
        Ok(resource) => resource,
        Err(error) if error.is_eof() => return Line::Rejected("the line is cut off".into()),
        Err(error) => return Line::Rejected(format!("not JSON ({error})")),
    };
    let (Some(resource_type), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
        return Line::Rejected("not a resource with a type and an id".into());
    };
    if resource_type == "OperationOutcome" {
        let said = baton_fhir::outcome::diagnostics(&resource).unwrap_or("(no details)");
        return Line::Rejected(format!("the previous plan said: {said}"));
    }
    let staged = |coverage_id: &str| {
        Line::Staged(StagedLine {
            coverage_id: coverage_id.to_owned(),
            resource_type: resource_type.to_owned(),
            source_id: id.to_owned(),
            body: text.trim().to_owned(),
        })
    };
    match baton_fhir::index::patient_of(resource_type, &resource, base) {
        Some(patient) => match routes.get(&patient) {
            Some(coverage) => staged(coverage),
            None => Line::Rejected(format!("{resource_type}/{id} names a patient this plan did not ask about")),
        },
        None if resource_type == "Provenance" => staged(PROVENANCE),
        None if !is_compartment_type(resource_type) => staged(STAGED_SHARED),
        None => Line::Rejected(format!("{resource_type}/{id} names no patient")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://old.example/fhir";

    fn routes() -> HashMap<String, String> {
        [("p1".to_owned(), "cov-1".to_owned())].into()
    }

    fn coverage_of(line: Line) -> Result<String, String> {
        match line {
            Line::Staged(s) => Ok(s.coverage_id),
            Line::Rejected(why) => Err(why),
        }
    }

    #[test]
    fn each_line_goes_to_the_member_it_names_and_never_to_another() {
        let eob = r#"{"resourceType":"ExplanationOfBenefit","id":"e1","patient":{"reference":"Patient/p1"}}"#;
        assert_eq!(coverage_of(route(eob, &routes(), BASE)), Ok("cov-1".into()));
        let other = r#"{"resourceType":"Condition","id":"c9","subject":{"reference":"Patient/p2"}}"#;
        assert!(coverage_of(route(other, &routes(), BASE)).unwrap_err().contains("did not ask about"));
        let organization = r#"{"resourceType":"Organization","id":"o1","name":"Clinic"}"#;
        assert_eq!(coverage_of(route(organization, &routes(), BASE)), Ok(STAGED_SHARED.into()));
        let provenance =
            r#"{"resourceType":"Provenance","id":"pv","target":[{"reference":"ExplanationOfBenefit/e1"}]}"#;
        assert_eq!(coverage_of(route(provenance, &routes(), BASE)), Ok(PROVENANCE.into()));
    }

    #[test]
    fn a_cut_off_line_is_said_so() {
        let cut = r#"{"resourceType":"Condition","id":"c1","subject":{"refer"#;
        assert_eq!(coverage_of(route(cut, &routes(), BASE)), Err("the line is cut off".into()));
    }
}
