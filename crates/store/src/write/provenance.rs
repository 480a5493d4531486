//! The sensitive-Provenance rule: a Provenance naming a sensitive record is sensitive itself.

use super::*;

/// The statements of the sensitive-Provenance rule (see
/// [`WriteResources::mark_sensitive_provenance`]), round by round: first the Provenance just
/// written that name a sensitive target, then the Provenance naming anything that became or
/// was written sensitive, until a round marks nothing (or, against a cycle of Provenance,
/// after [`ProvenanceRule::ROUNDS`]).
///
/// On PostgreSQL a row another transaction holds is skipped (`SKIP LOCKED`): two page commits
/// of one transfer run at once, and the later one may have written a Provenance the earlier
/// one would mark while waiting for the earlier one to commit — waiting for its lock would be
/// a cycle. The later one checks what it wrote itself, after the earlier one committed.
pub(super) struct ProvenanceRule {
    dialect: Dialect,
    marked: std::collections::HashSet<(String, String)>,
    rounds: usize,
}

impl ProvenanceRule {
    pub(super) const ROUNDS: usize = 8;
    const CHUNK: usize = 400;

    pub(super) fn new(dialect: Dialect) -> Self {
        Self { dialect, marked: Default::default(), rounds: 0 }
    }

    /// The first round: this batch's Provenance checked against their targets (this plan's own
    /// Provenance of a transfer page names only that page's records, each already known), and
    /// the Provenance naming this batch's sensitive records.
    pub(super) fn first(&mut self, stored: &[StoredResource], custodian_checked: bool) -> Vec<SqlBuilder> {
        let provenance: Vec<i64> = stored
            .iter()
            .filter(|r| r.resource_type == "Provenance" && !r.sensitive)
            .filter(|r| !(custodian_checked && r.source_system.is_none()))
            .map(|r| r.seq)
            .collect();
        let sensitive: Vec<(String, String)> =
            stored.iter().filter(|r| r.sensitive).map(|r| (r.resource_type.clone(), r.id.clone())).collect();
        let mut statements: Vec<SqlBuilder> =
            provenance.chunks(Self::CHUNK).map(|seqs| with_sensitive_target(seqs, self.dialect)).collect();
        statements.extend(sensitive.chunks(Self::CHUNK).map(|targets| naming(targets, self.dialect)));
        statements
    }

    /// The next round, from what the last one marked.
    pub(super) fn next(&mut self, marked: Vec<(String, String)>) -> Vec<SqlBuilder> {
        self.rounds += 1;
        let new: Vec<(String, String)> = marked.into_iter().filter(|k| self.marked.insert(k.clone())).collect();
        if self.rounds >= Self::ROUNDS {
            return vec![];
        }
        new.chunks(Self::CHUNK).map(|targets| naming(targets, self.dialect)).collect()
    }

    pub(super) fn apply(self, stored: &mut [StoredResource]) {
        for resource in stored.iter_mut() {
            if self.marked.contains(&(resource.resource_type.clone(), resource.id.clone())) {
                resource.sensitive = true;
            }
        }
    }
}

/// Rows a statement of the rule may change: on PostgreSQL, not those another transaction holds.
fn unlocked(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => " FOR UPDATE OF r SKIP LOCKED",
        Dialect::Sqlite => "",
    }
}

/// Marks those of `seqs` (Provenance) that name a live sensitive target.
fn with_sensitive_target(seqs: &[i64], dialect: Dialect) -> SqlBuilder {
    let mut sql = SqlBuilder::new(
        "UPDATE fhir_resource SET sensitive = TRUE WHERE seq IN (SELECT r.seq FROM fhir_resource r \
         WHERE r.sensitive = FALSE AND r.seq IN (",
    );
    for (i, seq) in seqs.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.arg(Arg::I64(*seq));
    }
    sql.push(
        ") AND EXISTS (SELECT 1 FROM fhir_reference f JOIN fhir_resource t \
         ON t.resource_type = f.target_type AND t.id = f.target_id \
         WHERE f.resource_seq = r.seq AND f.path = 'target' AND t.sensitive = TRUE AND t.deleted_at IS NULL)",
    )
    .push(unlocked(dialect))
    .push(") RETURNING resource_type, id");
    sql
}

/// Marks the live Provenance that name one of `targets`.
fn naming(targets: &[(String, String)], dialect: Dialect) -> SqlBuilder {
    let mut sql = SqlBuilder::new("WITH k (t, i) AS (VALUES ");
    sql.rows(targets.iter().map(|(t, i)| vec![Arg::Text(t.clone()), Arg::Text(i.clone())]));
    sql.push(
        ") UPDATE fhir_resource SET sensitive = TRUE WHERE seq IN (SELECT r.seq FROM fhir_resource r \
         WHERE r.resource_type = 'Provenance' AND r.sensitive = FALSE AND r.deleted_at IS NULL \
         AND r.seq IN (SELECT f.resource_seq FROM k JOIN fhir_reference f \
         ON f.target_type = k.t AND f.target_id = k.i WHERE f.path = 'target')",
    )
    .push(unlocked(dialect))
    .push(") RETURNING resource_type, id");
    sql
}
