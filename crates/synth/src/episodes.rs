//! The generator's state machine: directory, person, then care episodes month by month.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use time::{Date, Duration, Month};

use crate::codes::{self, CDT, CPT, CVX, Condition, ICD10, LOINC, NDC, NPI, RXNORM, SNOMED};
use crate::{IdStyle, Labelling, Member, Options, payer_organization, uuid_from};

const US_CORE: &str = "http://hl7.org/fhir/us/core/StructureDefinition/";
const CARIN: &str = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/";
const PDEX: &str = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// The latest date an episode writes, in days after its day (a claim's payment).
const LATEST_AFTER_DAY: i64 = 14;

pub struct State {
    member: Member,
    options: Options,
    rng: ChaCha8Rng,
    /// The month being generated.
    month: Date,
    start: Date,
    counter: u64,
    sensitive_seen: u64,
    /// Episodes of the current month not yet emitted.
    pending: Vec<Episode>,
    coverage_id: String,
}

#[derive(Debug, Clone, Copy)]
enum Episode {
    Visit(Condition),
    Fill(Condition),
    Physical,
    FluShot,
    Dental,
    InpatientStay,
    OutpatientProcedure,
    PriorAuthorization(Condition),
    Note,
}

impl State {
    pub fn new(member: Member, options: Options, rng: ChaCha8Rng) -> Self {
        let years = options.years.max(1) as i32;
        let start =
            Date::from_calendar_date(options.as_of.year() - years, options.as_of.month(), 1).expect("valid date");
        let coverage_id = format!("{}-coverage", member.patient_id);
        Self { member, options, rng, month: start, start, counter: 0, sensitive_seen: 0, pending: vec![], coverage_id }
    }

    fn id(&mut self, kind: &str) -> String {
        self.counter += 1;
        match self.options.ids {
            IdStyle::Readable => format!("{}-{kind}-{}", self.member.patient_id, self.counter),
            IdStyle::Random => uuid_from(self.options.seed ^ crate::fnv(&self.member.patient_id), self.counter),
        }
    }

    fn patient_ref(&self) -> Value {
        json!({"reference": format!("Patient/{}", self.member.patient_id)})
    }

    fn payer_ref(&self) -> Value {
        json!({"reference": format!("Organization/{}", self.options.payer.organization_id), "display": self.options.payer.name})
    }

    /// `meta` with a profile, and security labels when the resource is sensitive care that the
    /// member's labelling policy says to label.
    fn meta(&mut self, profile: &str, sensitive: Option<&str>) -> Value {
        let mut meta = json!({"profile": [profile]});
        if let Some(label) = sensitive {
            self.sensitive_seen += 1;
            let labelled = match self.member.labelling {
                Labelling::None => false,
                Labelling::All => true,
                Labelling::Some => self.sensitive_seen.is_multiple_of(2),
            };
            if labelled {
                meta["security"] = json!([
                    {"system": CONFIDENTIALITY, "code": "R", "display": "restricted"},
                    {"system": ACT_CODE, "code": label}
                ]);
            }
        }
        meta
    }

    pub fn directory(&mut self) -> Vec<Value> {
        let mut out = vec![payer_organization(&self.options.payer)];
        for (id, name, npi) in codes::PROVIDER_ORGANIZATIONS {
            out.push(json!({
                "resourceType": "Organization",
                "id": id,
                "meta": {"profile": [format!("{US_CORE}us-core-organization")]},
                "active": true,
                "identifier": [{"system": NPI, "value": npi}],
                "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"}]}],
                "name": name,
                "address": [{"city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US"}]
            }));
        }
        for (id, given, family, npi) in codes::PRACTITIONERS {
            out.push(json!({
                "resourceType": "Practitioner",
                "id": id,
                "meta": {"profile": [format!("{US_CORE}us-core-practitioner")]},
                "identifier": [{"system": NPI, "value": npi}],
                "name": [{"family": family, "given": [given], "prefix": ["Dr."]}]
            }));
        }
        out.push(json!({
            "resourceType": "Location",
            "id": "lakeside-hospital-main",
            "meta": {"profile": [format!("{US_CORE}us-core-location")]},
            "status": "active",
            "name": "Lakeside General Hospital, Main Campus",
            "managingOrganization": {"reference": "Organization/lakeside-hospital"},
            "address": {"line": ["100 Lake Shore Dr"], "city": "Springfield", "state": "IL", "postalCode": "62701"}
        }));
        out
    }

    pub fn person(&mut self) -> Vec<Value> {
        let m = self.member.clone();
        let payer = self.options.payer.clone();
        let mut out = vec![json!({
            "resourceType": "Patient",
            "id": m.patient_id,
            "meta": {"profile": [format!("{US_CORE}us-core-patient")]},
            "identifier": [{
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB", "display": "Member Number"}]},
                "system": format!("{}/member-id", payer.identifier_system),
                "value": m.member_id
            }],
            "active": true,
            "name": [{"use": "official", "family": m.family, "given": [m.given]}],
            "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
            "gender": m.gender,
            "birthDate": fmt_date(m.birth_date),
            "address": [{"use": "home", "city": m.city, "state": m.state, "postalCode": m.postal_code, "country": "US"}]
        })];
        let coverage_start = Date::from_calendar_date(self.start.year(), Month::January, 1).expect("valid date");
        out.push(json!({
            "resourceType": "Coverage",
            "id": self.coverage_id,
            "meta": {"profile": ["http://hl7.org/fhir/us/davinci-hrex/StructureDefinition/hrex-coverage"]},
            "identifier": [{
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
                "system": format!("{}/member-id", payer.identifier_system),
                "value": m.member_id
            }],
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIP", "display": "health insurance plan policy"}]},
            "subscriberId": m.member_id,
            "beneficiary": self.patient_ref(),
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
            "period": {"start": fmt_date(coverage_start), "end": fmt_date(self.options.as_of)},
            "payor": [self.payer_ref()],
            "class": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]}, "value": "GRP-7001", "name": "Employer Group Plan"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": "PPO-GOLD", "name": "Gold PPO"}
            ]
        }));
        let mut targets = vec![];
        for condition in m.conditions.clone() {
            let profile = condition.profile();
            let onset = self.start + Duration::days(self.rng.random_range(30..400));
            let id = self.id("condition");
            let meta =
                self.meta(&format!("{US_CORE}us-core-condition-problems-health-concerns"), profile.sensitive_label);
            out.push(json!({
                "resourceType": "Condition",
                "id": id,
                "meta": meta,
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
                "code": {"coding": [
                    {"system": SNOMED, "code": profile.snomed, "display": profile.snomed_display},
                    {"system": ICD10, "code": profile.icd10, "display": profile.icd10_display}
                ], "text": profile.snomed_display},
                "subject": self.patient_ref(),
                "onsetDateTime": fmt_date(onset),
                "recordedDate": fmt_date(onset)
            }));
            targets.push(format!("Condition/{id}"));
            if condition == Condition::Diabetes {
                let goal = self.id("goal");
                out.push(json!({
                    "resourceType": "Goal",
                    "id": goal,
                    "meta": {"profile": [format!("{US_CORE}us-core-goal")]},
                    "lifecycleStatus": "active",
                    "description": {"text": "Hemoglobin A1c below 7%"},
                    "subject": self.patient_ref(),
                    "startDate": fmt_date(onset),
                    "target": [{"measure": {"coding": [{"system": LOINC, "code": "4548-4"}]}, "detailQuantity": {"value": 7, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}]
                }));
                let plan = self.id("careplan");
                out.push(json!({
                    "resourceType": "CarePlan",
                    "id": plan,
                    "meta": {"profile": [format!("{US_CORE}us-core-careplan")]},
                    "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Diabetes self-management: diet, exercise, metformin, A1c every 3 months.</div>"},
                    "status": "active",
                    "intent": "plan",
                    "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan"}]}],
                    "subject": self.patient_ref(),
                    "period": {"start": fmt_date(onset)},
                    "goal": [{"reference": format!("Goal/{goal}")}]
                }));
                targets.push(format!("Goal/{goal}"));
                targets.push(format!("CarePlan/{plan}"));
            }
        }
        let allergy = self.id("allergy");
        out.push(json!({
            "resourceType": "AllergyIntolerance",
            "id": allergy,
            "meta": {"profile": [format!("{US_CORE}us-core-allergyintolerance")]},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
            "code": {"coding": [{"system": SNOMED, "code": "91936005", "display": "Allergy to penicillin"}]},
            "patient": self.patient_ref(),
            "recordedDate": fmt_date(self.start + Duration::days(20)),
            "reaction": [{"manifestation": [{"coding": [{"system": SNOMED, "code": "271807003", "display": "Skin rash"}]}]}]
        }));
        targets.push(format!("AllergyIntolerance/{allergy}"));
        let provenance = self.provenance(&targets, self.start + Duration::days(30), "prairie-family-medicine");
        out.push(provenance);
        out
    }

    /// The next episode's resources; `None` when the timeline is done (natural mode).
    pub fn next_episode(&mut self, unbounded: bool) -> Option<Vec<Value>> {
        loop {
            if let Some(episode) = self.pending.pop() {
                let day = self.month + Duration::days(self.rng.random_range(0..27));
                // Nothing is dated after `as_of`: an episode's claim is created and paid within
                // two weeks of its day, so one that late is left out.
                if day + Duration::days(LATEST_AFTER_DAY) > self.options.as_of {
                    continue;
                }
                return Some(self.episode(episode, day));
            }
            if self.month > self.options.as_of {
                if !unbounded {
                    return None;
                }
                // Target mode: replay the timeline (new ids) until the record is big enough.
                self.month = self.start;
            }
            self.plan_month();
            self.month = next_month(self.month);
        }
    }

    fn plan_month(&mut self) {
        let month = self.month.month();
        let mut plan = vec![];
        for condition in self.member.conditions.clone() {
            let visit_every = if condition.is_sensitive() { 2 } else { 3 };
            if (u8::from(month) as u32).is_multiple_of(visit_every) {
                plan.push(Episode::Visit(condition));
            }
            if condition.profile().medication.is_some() && self.rng.random_bool(0.8) {
                plan.push(Episode::Fill(condition));
            }
            if condition.profile().prior_authorization.is_some() && self.rng.random_bool(0.05) {
                plan.push(Episode::PriorAuthorization(condition));
            }
        }
        if month == Month::March {
            plan.push(Episode::Physical);
            plan.push(Episode::Note);
        }
        if month == Month::October {
            plan.push(Episode::FluShot);
        }
        if month == Month::May || month == Month::November {
            plan.push(Episode::Dental);
        }
        if self.rng.random_bool(0.02) {
            plan.push(Episode::InpatientStay);
        }
        if self.rng.random_bool(0.04) {
            plan.push(Episode::OutpatientProcedure);
        }
        plan.reverse();
        self.pending = plan;
    }

    fn episode(&mut self, episode: Episode, day: Date) -> Vec<Value> {
        match episode {
            Episode::Visit(condition) => self.visit(condition, day),
            Episode::Fill(condition) => self.fill(condition, day),
            Episode::Physical => self.physical(day),
            Episode::FluShot => self.flu_shot(day),
            Episode::Dental => self.dental(day),
            Episode::InpatientStay => self.inpatient(day),
            Episode::OutpatientProcedure => self.outpatient(day),
            Episode::PriorAuthorization(condition) => self.prior_authorization(condition, day),
            Episode::Note => self.note(day),
        }
    }

    #[allow(clippy::too_many_arguments)] // one call site per encounter kind; a struct would only rename them
    fn encounter(
        &mut self,
        class: &str,
        type_code: (&str, &str),
        day: Date,
        end: Date,
        practitioner: &str,
        organization: &str,
        reason: Option<(&str, &str)>,
        sensitive: Option<&str>,
    ) -> (String, Value) {
        let id = self.id("encounter");
        let meta = self.meta(&format!("{US_CORE}us-core-encounter"), sensitive);
        let mut encounter = json!({
            "resourceType": "Encounter",
            "id": id,
            "meta": meta,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
            "type": [{"coding": [{"system": SNOMED, "code": type_code.0, "display": type_code.1}]}],
            "subject": self.patient_ref(),
            "participant": [{"individual": {"reference": format!("Practitioner/{practitioner}")}}],
            "period": {"start": fmt_datetime(day, 9), "end": fmt_datetime(end, 10)},
            "serviceProvider": {"reference": format!("Organization/{organization}")}
        });
        if let Some((code, display)) = reason {
            encounter["reasonCode"] = json!([{"coding": [{"system": ICD10, "code": code, "display": display}]}]);
        }
        (id, encounter)
    }

    #[allow(clippy::too_many_arguments)]
    fn claim(
        &mut self,
        kind: ClaimKind,
        day: Date,
        end: Date,
        provider: &str,
        diagnoses: &[(&str, &str)],
        items: &[(&str, &str, &str)],
        sensitive: Option<&str>,
    ) -> (String, Value) {
        let id = self.id("eob");
        let financial = self.options.financial_claims;
        let profile = format!("{CARIN}{}{}", kind.profile(), if financial { "" } else { "-Basis" });
        let meta = self.meta(&profile, sensitive);
        let claim_number = format!("{}{:08}", kind.prefix(), self.counter);
        let mut eob = json!({
            "resourceType": "ExplanationOfBenefit",
            "id": id,
            "meta": meta,
            "identifier": [{
                "type": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType", "code": "uc"}]},
                "system": format!("{}/claim-id", self.options.payer.identifier_system),
                "value": claim_number
            }],
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": kind.claim_type()}]},
            "use": "claim",
            "patient": self.patient_ref(),
            "billablePeriod": {"start": fmt_date(day), "end": fmt_date(end)},
            "created": fmt_datetime(end + Duration::days(3), 12),
            "insurer": self.payer_ref(),
            "provider": {"reference": format!("Organization/{provider}")},
            "outcome": "complete",
            "supportingInfo": [{
                "sequence": 1,
                "category": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType", "code": "clmrecvddate"}]},
                "timingDate": fmt_date(end + Duration::days(2))
            }],
            "insurance": [{"focal": true, "coverage": {"reference": format!("Coverage/{}", self.coverage_id)}}]
        });
        if let Some(sub_type) = kind.sub_type() {
            eob["subType"] = json!({"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType", "code": sub_type}]});
        }
        if !diagnoses.is_empty() {
            eob["diagnosis"] = Value::Array(
                diagnoses
                    .iter()
                    .enumerate()
                    .map(|(i, (code, display))| json!({
                        "sequence": i + 1,
                        "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": code, "display": display}]},
                        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "code": if i == 0 { "principal" } else { "secondary" }}]}]
                    }))
                    .collect(),
            );
        }
        let mut total_submitted = 0.0;
        let mut lines = vec![];
        for (i, (system, code, display)) in items.iter().enumerate() {
            let mut item = json!({
                "sequence": i + 1,
                "productOrService": {"coding": [{"system": system, "code": code, "display": display}]},
                "servicedDate": fmt_date(day),
                "adjudication": [{
                    "category": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator", "code": "benefitpaymentstatus"}]},
                    "reason": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerAdjudicationStatus", "code": "innetwork"}]}
                }]
            });
            if financial {
                let submitted = f64::from(self.rng.random_range(80..1200u32));
                total_submitted += submitted;
                if let Some(list) = item["adjudication"].as_array_mut() {
                    list.push(json!({"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}, "amount": {"value": submitted, "currency": "USD"}}));
                    list.push(json!({"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "benefit"}]}, "amount": {"value": (submitted * 0.7).round(), "currency": "USD"}}));
                }
            }
            lines.push(item);
        }
        eob["item"] = Value::Array(lines);
        if financial {
            eob["total"] = json!([
                {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}, "amount": {"value": total_submitted, "currency": "USD"}},
                {"category": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication", "code": "paidbypatient"}]}, "amount": {"value": (total_submitted * 0.2).round(), "currency": "USD"}}
            ]);
            eob["payment"] = json!({"amount": {"value": (total_submitted * 0.7).round(), "currency": "USD"}, "date": fmt_date(end + Duration::days(14))});
        }
        (id, eob)
    }

    fn provenance(&mut self, targets: &[String], recorded: Date, author: &str) -> Value {
        let id = self.id("provenance");
        json!({
            "resourceType": "Provenance",
            "id": id,
            "meta": {"profile": [format!("{PDEX}pdex-provenance")]},
            "target": targets.iter().map(|t| json!({"reference": t})).collect::<Vec<_>>(),
            "recorded": fmt_datetime(recorded, 18),
            "agent": [
                {
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]},
                    "who": {"reference": format!("Organization/{author}")}
                },
                {
                    "type": {"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type", "code": "transmitter"}]},
                    "who": {"reference": format!("Organization/{}", self.options.payer.organization_id)}
                }
            ],
            "entity": [{
                "extension": [{"url": format!("{PDEX}ProvenanceSourceFrom"), "valueCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/us/davinci-pdex/CodeSystem/ProvenancePayerSourceFormat", "code": "x12837"}]}}],
                "role": "source",
                "what": {"display": "Claims submission"}
            }]
        })
    }

    fn finish(&mut self, mut resources: Vec<Value>, day: Date, author: &str) -> Vec<Value> {
        let targets: Vec<String> = resources
            .iter()
            .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or("")))
            .collect();
        let provenance = self.provenance(&targets, day + Duration::days(5), author);
        resources.push(provenance);
        resources
    }

    fn visit(&mut self, condition: Condition, day: Date) -> Vec<Value> {
        let p = condition.profile();
        let sensitive = p.sensitive_label;
        let (practitioner, organization) = if sensitive.is_some() {
            ("dr-ramos", "riverside-behavioral")
        } else {
            ("dr-okafor", "prairie-family-medicine")
        };
        let (encounter_id, encounter) = self.encounter(
            "AMB",
            ("185347001", "Encounter for problem"),
            day,
            day,
            practitioner,
            organization,
            Some((p.icd10, p.icd10_display)),
            sensitive,
        );
        let (_, eob) = self.claim(
            ClaimKind::Professional,
            day,
            day,
            organization,
            &[(p.icd10, p.icd10_display)],
            &[(p.visit.0, p.visit.1, p.visit.2)],
            sensitive,
        );
        let mut resources = vec![encounter, eob];
        if let Some((code, display, unit, low, high)) = p.observation {
            let id = self.id("observation");
            let value = (self.rng.random_range(low..high) * 10.0).round() / 10.0;
            let meta = self.meta(&format!("{US_CORE}us-core-observation-lab"), sensitive);
            let category = if unit == "{score}" { "survey" } else { "laboratory" };
            resources.push(json!({
                "resourceType": "Observation",
                "id": id,
                "meta": meta,
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
                "subject": self.patient_ref(),
                "encounter": {"reference": format!("Encounter/{encounter_id}")},
                "effectiveDateTime": fmt_datetime(day, 9),
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
            }));
        }
        self.finish(resources, day, organization)
    }

    fn fill(&mut self, condition: Condition, day: Date) -> Vec<Value> {
        let p = condition.profile();
        let Some((rxnorm, display)) = p.medication else { return vec![] };
        let sensitive = p.sensitive_label;
        let request = self.id("medicationrequest");
        let request_meta = self.meta(&format!("{US_CORE}us-core-medicationrequest"), sensitive);
        let prescriber = if sensitive.is_some() { "dr-ramos" } else { "dr-okafor" };
        let medication = json!({"coding": [{"system": RXNORM, "code": rxnorm, "display": display}], "text": display});
        let mut resources = vec![json!({
            "resourceType": "MedicationRequest",
            "id": request,
            "meta": request_meta,
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]}],
            "medicationCodeableConcept": medication,
            "subject": self.patient_ref(),
            "authoredOn": fmt_date(day),
            "requester": {"reference": format!("Practitioner/{prescriber}")},
            "dosageInstruction": [{"text": "Take as directed"}],
            "dispenseRequest": {"numberOfRepeatsAllowed": 3, "quantity": {"value": 30, "unit": "each"}}
        })];
        let dispense = self.id("medicationdispense");
        let dispense_meta = self.meta(&format!("{PDEX}pdex-medicationdispense"), sensitive);
        resources.push(json!({
            "resourceType": "MedicationDispense",
            "id": dispense,
            "meta": dispense_meta,
            "status": "completed",
            "medicationCodeableConcept": medication,
            "subject": self.patient_ref(),
            "authorizingPrescription": [{"reference": format!("MedicationRequest/{request}")}],
            "quantity": {"value": 30, "unit": "each"},
            "daysSupply": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"},
            "whenHandedOver": fmt_datetime(day + Duration::days(1), 15)
        }));
        let ndc = format!("00093{:06}", self.rng.random_range(0..999_999u32));
        let (_, eob) = self.claim(
            ClaimKind::Pharmacy,
            day + Duration::days(1),
            day + Duration::days(1),
            "corner-pharmacy",
            &[],
            &[(NDC, ndc.as_str(), display)],
            sensitive,
        );
        resources.push(eob);
        self.finish(resources, day, "corner-pharmacy")
    }

    fn physical(&mut self, day: Date) -> Vec<Value> {
        let (encounter_id, encounter) = self.encounter(
            "AMB",
            ("410620009", "Well adult visit"),
            day,
            day,
            "dr-okafor",
            "prairie-family-medicine",
            Some(("Z00.00", "Encounter for general adult medical examination without abnormal findings")),
            None,
        );
        let (_, eob) = self.claim(
            ClaimKind::Professional,
            day,
            day,
            "prairie-family-medicine",
            &[("Z00.00", "Encounter for general adult medical examination without abnormal findings")],
            &[
                (CPT, "99396", "Periodic comprehensive preventive medicine, established patient, 40-64 years"),
                (CPT, "80053", "Comprehensive metabolic panel"),
            ],
            None,
        );
        let weight = self.id("observation");
        let glucose = self.id("observation");
        let report = self.id("diagnosticreport");
        let weight_value = f64::from(self.rng.random_range(560..980u32)) / 10.0;
        let glucose_value = self.rng.random_range(78..126u32);
        let resources = vec![
            encounter,
            eob,
            json!({
                "resourceType": "Observation",
                "id": weight,
                "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/bodyweight"]},
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
                "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
                "subject": self.patient_ref(),
                "encounter": {"reference": format!("Encounter/{encounter_id}")},
                "effectiveDateTime": fmt_datetime(day, 9),
                "valueQuantity": {"value": weight_value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
            }),
            json!({
                "resourceType": "Observation",
                "id": glucose,
                "meta": {"profile": [format!("{US_CORE}us-core-observation-lab")]},
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}]},
                "subject": self.patient_ref(),
                "effectiveDateTime": fmt_datetime(day, 9),
                "valueQuantity": {"value": glucose_value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}
            }),
            json!({
                "resourceType": "DiagnosticReport",
                "id": report,
                "meta": {"profile": [format!("{US_CORE}us-core-diagnosticreport-lab")]},
                "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]}],
                "code": {"coding": [{"system": LOINC, "code": "24323-8", "display": "Comprehensive metabolic 2000 panel - Serum or Plasma"}]},
                "subject": self.patient_ref(),
                "encounter": {"reference": format!("Encounter/{encounter_id}")},
                "effectiveDateTime": fmt_datetime(day, 9),
                "issued": fmt_datetime(day + Duration::days(1), 8),
                "performer": [{"reference": "Organization/lakeside-hospital"}],
                "result": [{"reference": format!("Observation/{glucose}")}]
            }),
        ];
        self.finish(resources, day, "prairie-family-medicine")
    }

    fn flu_shot(&mut self, day: Date) -> Vec<Value> {
        let id = self.id("immunization");
        let resources = vec![json!({
            "resourceType": "Immunization",
            "id": id,
            "meta": {"profile": [format!("{US_CORE}us-core-immunization")]},
            "status": "completed",
            "vaccineCode": {"coding": [{"system": CVX, "code": "140", "display": "Influenza, seasonal, injectable, preservative free"}]},
            "patient": self.patient_ref(),
            "occurrenceDateTime": fmt_datetime(day, 11),
            "primarySource": true,
            "performer": [{"actor": {"reference": "Organization/corner-pharmacy"}}]
        })];
        self.finish(resources, day, "corner-pharmacy")
    }

    fn dental(&mut self, day: Date) -> Vec<Value> {
        let (_, eob) = self.claim(
            ClaimKind::Oral,
            day,
            day,
            "bright-smile-dental",
            &[],
            &[(CDT, "D0120", "Periodic oral evaluation - established patient"), (CDT, "D1110", "Prophylaxis - adult")],
            None,
        );
        self.finish(vec![eob], day, "bright-smile-dental")
    }

    fn inpatient(&mut self, day: Date) -> Vec<Value> {
        let end = day + Duration::days(3);
        let (encounter_id, encounter) = self.encounter(
            "IMP",
            ("32485007", "Hospital admission"),
            day,
            end,
            "dr-lindqvist",
            "lakeside-hospital",
            Some(("J18.9", "Pneumonia, unspecified organism")),
            None,
        );
        let condition = self.id("condition");
        let procedure = self.id("procedure");
        let (_, eob) = self.claim(
            ClaimKind::Inpatient,
            day,
            end,
            "lakeside-hospital",
            &[("J18.9", "Pneumonia, unspecified organism")],
            &[
                (CPT, "99223", "Initial hospital inpatient care, high complexity"),
                (CPT, "71046", "Radiologic examination, chest; 2 views"),
            ],
            None,
        );
        let resources = vec![
            encounter,
            json!({
                "resourceType": "Condition",
                "id": condition,
                "meta": {"profile": [format!("{US_CORE}us-core-condition-encounter-diagnosis")]},
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
                "code": {"coding": [{"system": ICD10, "code": "J18.9", "display": "Pneumonia, unspecified organism"}]},
                "subject": self.patient_ref(),
                "encounter": {"reference": format!("Encounter/{encounter_id}")},
                "onsetDateTime": fmt_date(day),
                "abatementDateTime": fmt_date(end)
            }),
            json!({
                "resourceType": "Procedure",
                "id": procedure,
                "meta": {"profile": [format!("{US_CORE}us-core-procedure")]},
                "status": "completed",
                "code": {"coding": [{"system": CPT, "code": "71046", "display": "Radiologic examination, chest; 2 views"}]},
                "subject": self.patient_ref(),
                "encounter": {"reference": format!("Encounter/{encounter_id}")},
                "performedDateTime": fmt_datetime(day, 14),
                "location": {"reference": "Location/lakeside-hospital-main"}
            }),
            eob,
        ];
        self.finish(resources, day, "lakeside-hospital")
    }

    fn outpatient(&mut self, day: Date) -> Vec<Value> {
        let (encounter_id, encounter) = self.encounter(
            "AMB",
            ("185349003", "Encounter for check up"),
            day,
            day,
            "dr-chen",
            "lakeside-hospital",
            Some(("Z12.11", "Encounter for screening for malignant neoplasm of colon")),
            None,
        );
        let procedure = self.id("procedure");
        let (_, eob) = self.claim(
            ClaimKind::Outpatient,
            day,
            day,
            "lakeside-hospital",
            &[("Z12.11", "Encounter for screening for malignant neoplasm of colon")],
            &[(CPT, "45378", "Colonoscopy, flexible; diagnostic")],
            None,
        );
        let resources = vec![
            encounter,
            json!({
                "resourceType": "Procedure",
                "id": procedure,
                "meta": {"profile": [format!("{US_CORE}us-core-procedure")]},
                "status": "completed",
                "code": {"coding": [{"system": CPT, "code": "45378", "display": "Colonoscopy, flexible; diagnostic"}]},
                "subject": self.patient_ref(),
                "encounter": {"reference": format!("Encounter/{encounter_id}")},
                "performedDateTime": fmt_datetime(day, 8)
            }),
            eob,
        ];
        self.finish(resources, day, "lakeside-hospital")
    }

    fn prior_authorization(&mut self, condition: Condition, day: Date) -> Vec<Value> {
        // Approved for 90 days, and the record ends at `as_of`.
        let end = (day + Duration::days(90)).min(self.options.as_of);
        let p = condition.profile();
        let Some((system, code, display)) = p.prior_authorization else { return vec![] };
        let sensitive = p.sensitive_label;
        let id = self.id("priorauth");
        let meta = self.meta(&format!("{PDEX}pdex-priorauthorization"), sensitive);
        let approved = self.rng.random_bool(0.8);
        let provider = if sensitive.is_some() { "riverside-behavioral" } else { "prairie-family-medicine" };
        let resources = vec![json!({
            "resourceType": "ExplanationOfBenefit",
            "id": id,
            "meta": meta,
            "extension": [{"url": format!("{PDEX}extension-levelOfServiceCode"), "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/1338", "code": "E", "display": "Elective"}]}}],
            "identifier": [{"system": format!("{}/prior-authorization", self.options.payer.identifier_system), "value": format!("PA{:08}", self.counter)}],
            "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "use": "preauthorization",
            "patient": self.patient_ref(),
            "billablePeriod": {"start": fmt_date(day), "end": fmt_date(end)},
            "created": fmt_datetime(day, 10),
            "insurer": self.payer_ref(),
            "provider": {"reference": format!("Organization/{provider}")},
            "outcome": "complete",
            "preAuthRef": [format!("AUTH{:06}", self.counter)],
            "preAuthRefPeriod": [{"start": fmt_date(day), "end": fmt_date(end)}],
            "diagnosis": [{
                "sequence": 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": p.icd10, "display": p.icd10_display}]}
            }],
            "insurance": [{"focal": true, "coverage": {"reference": format!("Coverage/{}", self.coverage_id)}}],
            "item": [{
                "sequence": 1,
                "productOrService": {"coding": [{"system": system, "code": code, "display": display}]},
                "servicedPeriod": {"start": fmt_date(day), "end": fmt_date(end)},
                "adjudication": [{
                    "extension": [{
                        "url": format!("{PDEX}extension-reviewAction"),
                        "extension": [
                            {"url": "number", "valueString": format!("AUTH{:06}", self.counter)},
                            {"url": format!("{PDEX}extension-reviewActionCode"), "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/306", "code": if approved { "A1" } else { "A3" }, "display": if approved { "Certified in total" } else { "Not certified" }}]}}
                        ]
                    }],
                    "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}
                }]
            }]
        })];
        self.finish(resources, day, provider)
    }

    fn note(&mut self, day: Date) -> Vec<Value> {
        let id = self.id("documentreference");
        let text = format!(
            "Annual visit summary for {} {}: vitals reviewed, labs ordered, preventive care up to date.",
            self.member.given, self.member.family
        );
        let resources = vec![json!({
            "resourceType": "DocumentReference",
            "id": id,
            "meta": {"profile": [format!("{US_CORE}us-core-documentreference")]},
            "status": "current",
            "type": {"coding": [{"system": LOINC, "code": "34117-2", "display": "History and physical note"}]},
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "code": "clinical-note"}]}],
            "subject": self.patient_ref(),
            "date": fmt_datetime(day, 17),
            "author": [{"reference": "Practitioner/dr-okafor"}],
            "content": [{"attachment": {"contentType": "text/plain", "data": base64(&text), "title": "Visit summary"}}],
            "context": {"period": {"start": fmt_date(day), "end": fmt_date(day)}}
        })];
        self.finish(resources, day, "prairie-family-medicine")
    }
}

#[derive(Debug, Clone, Copy)]
enum ClaimKind {
    Professional,
    Inpatient,
    Outpatient,
    Oral,
    Pharmacy,
}

impl ClaimKind {
    fn profile(self) -> &'static str {
        match self {
            ClaimKind::Professional => "C4BB-ExplanationOfBenefit-Professional-NonClinician",
            ClaimKind::Inpatient => "C4BB-ExplanationOfBenefit-Inpatient-Institutional",
            ClaimKind::Outpatient => "C4BB-ExplanationOfBenefit-Outpatient-Institutional",
            ClaimKind::Oral => "C4BB-ExplanationOfBenefit-Oral",
            ClaimKind::Pharmacy => "C4BB-ExplanationOfBenefit-Pharmacy",
        }
    }

    fn claim_type(self) -> &'static str {
        match self {
            ClaimKind::Professional => "professional",
            ClaimKind::Inpatient | ClaimKind::Outpatient => "institutional",
            ClaimKind::Oral => "oral",
            ClaimKind::Pharmacy => "pharmacy",
        }
    }

    fn sub_type(self) -> Option<&'static str> {
        match self {
            ClaimKind::Inpatient => Some("inpatient"),
            ClaimKind::Outpatient => Some("outpatient"),
            _ => None,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            ClaimKind::Professional => "PR",
            ClaimKind::Inpatient => "IP",
            ClaimKind::Outpatient => "OP",
            ClaimKind::Oral => "DN",
            ClaimKind::Pharmacy => "RX",
        }
    }
}

fn next_month(date: Date) -> Date {
    let (year, month) = if date.month() == Month::December {
        (date.year() + 1, Month::January)
    } else {
        (date.year(), date.month().next())
    };
    Date::from_calendar_date(year, month, 1).expect("valid date")
}

pub fn fmt_date(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

fn fmt_datetime(date: Date, hour: u8) -> String {
    format!("{}T{hour:02}:00:00-06:00", fmt_date(date))
}

fn base64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
