//! This plan's Provenance of what arrived (custodian, with the previous plan as transmitter)
//! and the Organizations it names.

use baton_store::{ResourceWrite, Timestamp};
use serde_json::{Value, json};
use sha2::Digest;
use sha2::Sha256;

use super::phases::slug;
use super::{Job, JobEnd};
use crate::hex;

impl Job<'_> {
    /// The Organizations the custodian Provenance names: the previous plan (transmitter) and
    /// this plan (custodian). Written with the plan, before any Provenance refers to them.
    pub(super) fn plan_organizations(&self) -> Result<Vec<ResourceWrite>, JobEnd> {
        let payer_name =
            self.credentials.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| self.link.payer_id.clone());
        let pay =
            json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay"}]}]);
        let organizations = [
            json!({"resourceType": "Organization", "id": self.payer_organization(), "active": true, "name": payer_name,
                "type": pay, "identifier": [{"system": "urn:ietf:rfc:3986", "value": self.ctx.source_base}]}),
            json!({"resourceType": "Organization", "id": "this-plan", "active": true,
                "name": self.engine.config.plan_name, "type": pay}),
        ];
        organizations
            .into_iter()
            .map(|o| {
                baton_records::prepare(o, &self.ctx.local_base, None, None)
                    .map(|p| p.write)
                    .map_err(|e| JobEnd::Failed(e.to_string()))
            })
            .collect()
    }

    pub(super) fn payer_organization(&self) -> String {
        format!("payer-{}", slug(&self.link.payer_id))
    }

    /// PDex §1.7 (§pdex-127: at least one per exchange): a Provenance with this plan as
    /// custodian and the previous plan as transmitter, targeting the records of one committed
    /// batch (activity APPEND, reason RECORDMGT), written with them. One per batch keeps memory
    /// flat however big the record, and leaves what was committed described even if the
    /// transfer later fails. Its id is derived from its targets: a batch committed again after
    /// a crash rewrites the same Provenance.
    ///
    /// The batch's sensitive records get a Provenance of their own, itself sensitive: one
    /// listing them beside the others would show a reader who may not see them that they
    /// exist (and a received Provenance naming a sensitive record found later in the batch is
    /// marked sensitive first).
    ///
    /// Where the member left sensitive records out, such a received Provenance is left out
    /// with them, and counted so.
    pub(super) fn add_custodian_provenance(&mut self, resources: &mut Vec<ResourceWrite>) -> Result<(), JobEnd> {
        let source = self.ctx.source_base.clone();
        let mut kept = Vec::with_capacity(resources.len());
        for mut write in std::mem::take(resources) {
            let reason = (!write.sensitive && write.source_system.as_deref() == Some(source.as_str()))
                .then(|| self.sensitive_target(&write))
                .flatten();
            match reason {
                Some(reason) if !self.ctx.include_sensitive => self.retract(&write, reason),
                Some(reason) => {
                    write.sensitive = true;
                    self.sensitive.insert(crate::named::key(&write.resource_type, &write.id), reason);
                    kept.push(write);
                }
                None => kept.push(write),
            }
        }
        *resources = kept;
        let mut parts: [Vec<(String, String)>; 2] = [vec![], vec![]];
        for write in resources.iter().filter(|w| w.source_system.as_deref() == Some(source.as_str())) {
            parts[usize::from(write.sensitive)].push((write.resource_type.clone(), write.id.clone()));
        }
        for (received, sensitive) in parts.into_iter().zip([false, true]) {
            if !received.is_empty() {
                let mut write = self.custodian_provenance(&received)?;
                write.sensitive = sensitive;
                resources.push(write);
            }
        }
        Ok(())
    }

    pub(super) fn custodian_provenance(&self, received: &[(String, String)]) -> Result<ResourceWrite, JobEnd> {
        let mut digest = Sha256::new();
        for (t, id) in received {
            digest.update(t.as_bytes());
            digest.update(b"/");
            digest.update(id.as_bytes());
            digest.update(b"\n");
        }
        let id = format!("transfer-{}-{}", slug(&self.transfer.id), &hex(&digest.finalize())[..12]);
        let targets: Vec<Value> = received.iter().map(|(t, id)| json!({"reference": format!("{t}/{id}")})).collect();
        let payer_name =
            self.credentials.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| self.link.payer_id.clone());
        let provenance = json!({
            "resourceType": "Provenance",
            "id": id,
            "meta": {"profile": ["http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/pdex-provenance"]},
            "target": targets,
            "recorded": Timestamp::now().to_fhir_instant(),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "APPEND", "display": "append"}]},
            "reason": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "RECORDMGT", "display": "records management"}]}],
            "agent": [
                {
                    "type": {"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type", "code": "transmitter", "display": "Transmitter"}]},
                    "who": {"reference": format!("Organization/{}", self.payer_organization()), "display": payer_name}
                },
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian", "display": "Custodian"}]},
                    "who": {"reference": "Organization/this-plan", "display": self.engine.config.plan_name}
                }
            ]
        });
        let mut prepared = baton_records::prepare(provenance, &self.ctx.local_base, Some(self.ctx.member), None)
            .map_err(|e| JobEnd::Failed(e.to_string()))?;
        prepared.write.patient_id = Some(self.ctx.own_patient.clone());
        Ok(prepared.write)
    }
}
