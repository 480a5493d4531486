//! Deterministic synthetic members in the PDex profiles, for the demo, the tests and the
//! benchmarks.
//!
//! A [`Member`] describes a person and their health story (which conditions, how
//! sensitive care is labelled); [`record`] streams their plan record as FHIR R4 resources:
//! directory entries (payer, provider organizations, practitioners, locations), the US Core
//! Patient, HRex Coverage, then years of care — visits with CARIN BB non-financial ("Basis")
//! claims of every kind (professional, inpatient and outpatient institutional, oral,
//! pharmacy), PDex prior authorizations, conditions, observations, medication requests and
//! dispenses, immunizations, procedures, allergies, care plans and goals, clinical notes —
//! each episode with a PDex Provenance. Behavioral-health and substance-use care appears for
//! members whose story has it, some labelled in `meta.security`, some not.
//!
//! Same seed, same member → the same resources, byte for byte. The size knob
//! ([`Options::target_resources`]) repeats care episodes until the record has that many
//! resources (up to 100k for one member), without holding them all in memory.

mod codes;
mod episodes;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use time::{Date, Duration, Month};

pub use codes::Condition;

/// The payer whose record this is (the plan holding the data).
#[derive(Debug, Clone)]
pub struct Payer {
    /// Logical id of its Organization resource.
    pub organization_id: String,
    pub name: String,
    /// Its identifier system for member ids, claims and so on (a URL).
    pub identifier_system: String,
}

/// How sensitive care in a record is labelled in `meta.security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labelling {
    /// Never: only a code classifier can find it.
    None,
    /// Every other sensitive resource (the realistic mix).
    Some,
    /// All of it.
    All,
}

/// A synthetic member.
#[derive(Debug, Clone)]
pub struct Member {
    pub patient_id: String,
    pub member_id: String,
    pub given: String,
    pub family: String,
    pub gender: &'static str,
    pub birth_date: Date,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub conditions: Vec<Condition>,
    pub labelling: Labelling,
}

/// Generation settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// The day the record runs up to.
    pub as_of: Date,
    /// Years of history before `as_of` (at least 5 for PDex).
    pub years: u32,
    /// Stop after this many resources (0: one natural record, a few hundred resources).
    pub target_resources: usize,
    /// Give claims payment and cost-sharing amounts (full CARIN BB profiles instead of Basis).
    pub financial_claims: bool,
    /// How the care resources' ids look.
    pub ids: IdStyle,
    pub payer: Payer,
}

/// How the ids of care resources (everything but the directory, Patient and Coverage) look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdStyle {
    /// `<patient>-<kind>-<n>`: readable, and nearly sequential, so a store's key indexes take
    /// new rows near each other.
    #[default]
    Readable,
    /// Random-looking UUIDs (as many plans' servers assign), derived from the seed and the
    /// resource's position: still the same record for the same seed, but a store's key
    /// indexes take new rows all over.
    Random,
}

impl Options {
    pub fn new(payer: Payer) -> Self {
        Self {
            seed: 2026,
            as_of: Date::from_calendar_date(2026, Month::November, 1).expect("valid date"),
            years: 6,
            target_resources: 0,
            financial_claims: false,
            ids: IdStyle::Readable,
            payer,
        }
    }
}

/// The resources of one member's record, generated as they are consumed.
pub struct Record {
    state: episodes::State,
    queue: std::collections::VecDeque<Value>,
    produced: usize,
    target: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Directory,
    Person,
    Care,
    Done,
}

/// Streams `member`'s record.
pub fn record(member: &Member, options: &Options) -> Record {
    let seed = options.seed ^ fnv(&member.patient_id);
    Record {
        state: episodes::State::new(member.clone(), options.clone(), ChaCha8Rng::seed_from_u64(seed)),
        queue: Default::default(),
        produced: 0,
        target: options.target_resources,
        phase: Phase::Directory,
    }
}

impl Iterator for Record {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        loop {
            if self.target > 0 && self.produced >= self.target {
                return None;
            }
            if let Some(resource) = self.queue.pop_front() {
                self.produced += 1;
                return Some(resource);
            }
            match self.phase {
                Phase::Directory => {
                    self.queue.extend(self.state.directory());
                    self.phase = Phase::Person;
                }
                Phase::Person => {
                    self.queue.extend(self.state.person());
                    self.phase = Phase::Care;
                }
                Phase::Care => match self.state.next_episode(self.target > 0) {
                    Some(resources) => self.queue.extend(resources),
                    None => self.phase = Phase::Done,
                },
                Phase::Done => return None,
            }
        }
    }
}

/// The payer's own Organization (also in every record's directory part).
pub fn payer_organization(payer: &Payer) -> Value {
    json!({
        "resourceType": "Organization",
        "id": payer.organization_id,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-organization"]},
        "active": true,
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay", "display": "Payer"}]}],
        "name": payer.name,
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": payer.identifier_system}]
    })
}

/// The demo members (and test members): three people with different stories.
pub fn demo_members(prefix: &str) -> Vec<Member> {
    let date = |y, m, d| Date::from_calendar_date(y, Month::try_from(m).expect("month"), d).expect("valid date");
    vec![
        Member {
            patient_id: format!("{prefix}-maria"),
            member_id: format!("{}-204417", prefix.to_uppercase()),
            given: "Maria".into(),
            family: "Garcia".into(),
            gender: "female",
            birth_date: date(1984, 3, 12),
            city: "Springfield".into(),
            state: "IL".into(),
            postal_code: "62704".into(),
            conditions: vec![Condition::Asthma, Condition::Depression, Condition::OpioidUseDisorder],
            labelling: Labelling::Some,
        },
        Member {
            patient_id: format!("{prefix}-james"),
            member_id: format!("{}-204981", prefix.to_uppercase()),
            given: "James".into(),
            family: "Wilson".into(),
            gender: "male",
            birth_date: date(1959, 11, 2),
            city: "Peoria".into(),
            state: "IL".into(),
            postal_code: "61602".into(),
            conditions: vec![Condition::Diabetes, Condition::Hypertension, Condition::Hyperlipidemia],
            labelling: Labelling::None,
        },
        Member {
            patient_id: format!("{prefix}-ana"),
            member_id: format!("{}-205366", prefix.to_uppercase()),
            given: "Ana".into(),
            family: "López".into(),
            gender: "female",
            birth_date: date(1992, 7, 24),
            city: "Champaign".into(),
            state: "IL".into(),
            postal_code: "61820".into(),
            conditions: vec![Condition::Hypertension, Condition::Anxiety],
            labelling: Labelling::All,
        },
    ]
}

/// A member made up from a number (benchmarks, large test populations).
pub fn numbered_member(prefix: &str, n: usize, seed: u64) -> Member {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let given = codes::GIVEN_NAMES[rng.random_range(0..codes::GIVEN_NAMES.len())];
    let family = codes::FAMILY_NAMES[rng.random_range(0..codes::FAMILY_NAMES.len())];
    let birth = Date::from_calendar_date(rng.random_range(1940..2005), Month::January, 1).expect("valid date")
        + Duration::days(rng.random_range(0..365));
    let mut conditions = vec![];
    for (condition, p) in [
        (Condition::Diabetes, 0.3),
        (Condition::Hypertension, 0.4),
        (Condition::Asthma, 0.15),
        (Condition::Depression, 0.2),
        (Condition::OpioidUseDisorder, 0.05),
    ] {
        if rng.random_bool(p) {
            conditions.push(condition);
        }
    }
    Member {
        patient_id: format!("{prefix}-{n}"),
        member_id: format!("{}-{:06}", prefix.to_uppercase(), n),
        given: given.into(),
        family: family.into(),
        gender: if rng.random_bool(0.5) { "female" } else { "male" },
        birth_date: birth,
        city: "Springfield".into(),
        state: "IL".into(),
        postal_code: "62701".into(),
        conditions,
        labelling: Labelling::Some,
    }
}

/// A UUID (version 4 layout) made from `seed` and `n` by SplitMix64's mixer: the same for
/// the same inputs, and 122 well-mixed bits, so positions of one record do not collide.
fn uuid_from(seed: u64, n: u64) -> String {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let high = mix(seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let low = mix(n ^ seed.rotate_left(32));
    let high = (high & !0xf000) | 0x4000;
    let low = (low & !(0xc << 60)) | (0x8 << 60);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// FNV-1a: a stable hash for seeding (std's hashers are not stable across releases).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests;
