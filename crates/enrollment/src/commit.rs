//! Writing a previewed roster: each valid entry creates or updates one member, keyed by
//! member id, with their own Patient and Coverage in the store. Running it again with the
//! same roster changes nothing.

use baton_accounts::{AccountError, Accounts, NewMember, Username};
use baton_store::{AccountId, MemberDetails, Store, StoreError, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::invitation::Invitations;
use crate::roster::{Preview, RosterEntry};

/// The id of the Coverage enrollment writes for a member.
fn coverage_id(member: AccountId) -> String {
    format!("coverage-{}", member.0)
}

/// What happened to one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MemberOutcome {
    Created { account: i64 },
    Updated { account: i64 },
    Unchanged { account: i64 },
    Failed { reason: String },
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLine {
    pub member_id: String,
    pub name: String,
    #[serde(flatten)]
    pub outcome: MemberOutcome,
    /// What else the line did or could not do (its previous coverage), in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitReport {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub failed: u32,
    /// Rows left out because they have errors (shown in the preview).
    pub skipped: u32,
    pub lines: Vec<ReportLine>,
}

#[derive(Clone)]
pub struct Enrollment {
    pub store: Store,
    pub accounts: Accounts,
    pub invitations: Invitations,
    /// This plan's FHIR base (identifier systems, references).
    pub local_base: String,
    /// This plan's name (the Coverage's payor).
    pub plan_name: String,
}

impl Enrollment {
    /// Writes every valid entry of `preview`; a member that cannot be written is reported,
    /// not fatal. Store failures stop the commit (what was written stays, and re-running is
    /// safe).
    pub async fn commit(&self, preview: &Preview, by: AccountId, now: Timestamp) -> Result<CommitReport, StoreError> {
        let mut report = CommitReport { skipped: preview.error_count() as u32, ..Default::default() };
        for entry in preview.valid() {
            let outcome = self.enroll(entry, by, now).await?;
            match &outcome {
                MemberOutcome::Created { .. } => report.created += 1,
                MemberOutcome::Updated { .. } => report.updated += 1,
                MemberOutcome::Unchanged { .. } => report.unchanged += 1,
                MemberOutcome::Failed { .. } => report.failed += 1,
            }
            report.lines.push(ReportLine {
                member_id: entry.member_id.clone(),
                name: entry.display_name(),
                outcome,
                notes: vec![],
            });
        }
        Ok(report)
    }

    async fn enroll(&self, entry: &RosterEntry, by: AccountId, now: Timestamp) -> Result<MemberOutcome, StoreError> {
        let failed = |reason: String| Ok(MemberOutcome::Failed { reason });
        let (account, mut changed, created) = match self.store.account_by_member_id(&entry.member_id).await? {
            Some(account) => {
                let changed = self
                    .store
                    .update_member_details(
                        account.id,
                        &MemberDetails {
                            display_name: entry.display_name(),
                            birth_date: entry.birth_date,
                            coverage_start: entry.coverage_start,
                        },
                    )
                    .await?;
                (account, changed, false)
            }
            None => {
                let Ok(username) = Username::parse(&entry.member_id) else {
                    return failed(format!("member id {} cannot be a sign-in name", entry.member_id));
                };
                let created = self
                    .accounts
                    .create_member(NewMember {
                        username,
                        display_name: entry.display_name(),
                        password: None,
                        member_id: entry.member_id.clone(),
                        birth_date: entry.birth_date,
                        coverage_start: entry.coverage_start,
                    })
                    .await;
                match created {
                    Ok(account) => match self.store.account_by_id(account.id).await? {
                        Some(row) => (row, true, true),
                        None => return failed("the new account disappeared".into()),
                    },
                    Err(AccountError::UsernameTaken) => {
                        return failed(format!("the sign-in name {} belongs to another account", entry.member_id));
                    }
                    Err(AccountError::MemberIdTaken) => {
                        return failed(format!("member id {} was enrolled at the same time", entry.member_id));
                    }
                    Err(AccountError::Store(error)) => return Err(error),
                    Err(error) => return failed(error.to_string()),
                }
            }
        };
        let patient_id = account.patient_id.clone().unwrap_or_else(|| format!("member-{}", account.id.0));
        let coverage_id = coverage_id(account.id);
        let patient = self.patient(entry, &patient_id);
        let coverage = self.coverage(entry, &coverage_id, &patient_id);
        for resource in [patient, coverage] {
            changed |= self.put_if_changed(resource, account.id).await?;
        }
        if account.patient_id.as_deref() != Some(patient_id.as_str()) {
            self.store.set_account_patient(account.id, &patient_id).await?;
        }
        if created {
            if let Err(error) = self.invitations.issue(account.id, Some(by), now).await {
                tracing::error!(%error, member = account.id.0, "cannot issue an invitation");
                return failed(format!("enrolled, but no invitation link could be made: {error}"));
            }
            return Ok(MemberOutcome::Created { account: account.id.0 });
        }
        Ok(if changed {
            MemberOutcome::Updated { account: account.id.0 }
        } else {
            MemberOutcome::Unchanged { account: account.id.0 }
        })
    }

    /// Stores `resource` unless the stored version already says the same; true when written.
    async fn put_if_changed(&self, resource: Value, member: AccountId) -> Result<bool, StoreError> {
        let (Some(kind), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str()) else {
            return Ok(false);
        };
        if let Some(stored) = self.store.read_resource(kind, id).await?
            && stored.deleted_at.is_none()
            && serde_json::from_str::<Value>(&stored.body).is_ok_and(|mut body| {
                if let Some(object) = body.as_object_mut() {
                    object.remove("meta");
                }
                let mut fresh = resource.clone();
                if let Some(object) = fresh.as_object_mut() {
                    object.remove("meta");
                }
                body == fresh
            })
        {
            return Ok(false);
        }
        let prepared = baton_records::prepare(resource, &self.local_base, Some(member), None)
            .map_err(|e| StoreError::Corrupt(format!("a roster resource could not be prepared: {e}")))?;
        self.store.put_resources(vec![prepared.write]).await?;
        Ok(true)
    }

    /// The plan a member is enrolled in, as the Coverage enrollment wrote for them says.
    pub async fn plan_name_of(&self, member: &baton_store::Account) -> Result<Option<String>, StoreError> {
        if member.patient_id.is_none() {
            return Ok(None);
        }
        let coverage = self.store.read_resource("Coverage", &coverage_id(member.id)).await?;
        Ok(coverage
            .and_then(|c| serde_json::from_str::<Value>(&c.body).ok())
            .and_then(|c| c.pointer("/class/0/name").and_then(Value::as_str).map(str::to_owned)))
    }

    fn member_id_system(&self) -> String {
        format!("{}/member-id", self.local_base.trim_end_matches('/'))
    }

    fn patient(&self, entry: &RosterEntry, id: &str) -> Value {
        let mut patient = json!({
            "resourceType": "Patient",
            "id": id,
            "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
            "active": true,
            "identifier": [{
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
                "system": self.member_id_system(),
                "value": entry.member_id
            }],
            "name": [{"use": "official", "family": entry.family_name, "given": [entry.given_name], "text": entry.display_name()}],
            "gender": entry.gender.as_str(),
            "birthDate": baton_vocab::day::format(entry.birth_date)
        });
        if let Some(email) = &entry.email {
            patient["telecom"] = json!([{"system": "email", "value": email}]);
        }
        patient
    }

    fn coverage(&self, entry: &RosterEntry, id: &str, patient_id: &str) -> Value {
        json!({
            "resourceType": "Coverage",
            "id": id,
            "status": "active",
            "subscriberId": entry.member_id,
            "identifier": [{"system": self.member_id_system(), "value": entry.member_id}],
            "beneficiary": {"reference": format!("Patient/{patient_id}")},
            "subscriber": {"reference": format!("Patient/{patient_id}")},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
            "period": {"start": baton_vocab::day::format(entry.coverage_start)},
            "payor": [{"display": self.plan_name}],
            "class": [{
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
                "value": entry.plan,
                "name": entry.plan
            }]
        })
    }
}
