//! The transfer engine against a real data holder, with scripted faults.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use baton_fhir::exchange::{Category, category_of};
use baton_fhir::reference::Reference;
use baton_fhir::sensitivity;
use baton_store::{ResourceQuery, Timestamp};
use baton_transfer::{JobEnd, Progress};
use serde_json::Value;
use support::*;

async fn progress(w: &World, id: &str) -> Progress {
    Progress::from_json(&w.store.transfer(id).await.unwrap().unwrap().progress)
}

fn by_type(resources: &[Value]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for r in resources {
        *counts.entry(r["resourceType"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pull_stores_everything_once_with_every_reference_local() {
    let w = world(Setup { page_size: 40, ..Setup::default() }, None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let transfer = w.store.transfer("t1").await.unwrap().unwrap();
    assert_eq!(transfer.state, baton_vocab::TransferState::Completed);
    let p = progress(&w, "t1").await;
    assert!(p.pages >= 3, "{} pages", p.pages);

    // Count equals the previous plan's total, type by type.
    let source = w.source_counts().await;
    let stored = w.stored().await;
    let mine = by_type(&stored);
    for (t, n) in &source {
        let received = p.types.get(t).map(|c| c.stored).unwrap_or(0);
        assert_eq!(received, *n, "{t}: received {received} of {n}");
    }
    let compartment: u64 = source.keys().map(|t| p.types.get(t).map(|c| c.stored).unwrap_or(0)).sum();
    assert_eq!(compartment, source.values().sum::<u64>());

    // Both EOB kinds.
    let claims = stored
        .iter()
        .filter(|r| {
            r["resourceType"] == "ExplanationOfBenefit" && category_of("ExplanationOfBenefit", r) == Category::Claims
        })
        .count();
    let prior_auths =
        stored.iter().filter(|r| category_of("ExplanationOfBenefit", r) == Category::PriorAuthorizations).count();
    assert!(claims > 10 && prior_auths > 0, "claims {claims}, prior authorizations {prior_auths}");

    // Every reference resolves here; nothing points back at the previous plan.
    let all: Vec<Value> = {
        let query = ResourceQuery { limit: 10_000, ..Default::default() };
        w.store
            .search_resources(&query)
            .await
            .unwrap()
            .resources
            .iter()
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    };
    let ids: HashSet<String> =
        all.iter().map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())).collect();
    for resource in &stored {
        baton_fhir::walk::references(resource, |path, reference| {
            assert!(!reference.contains(&w.fhir_base), "{path}: points back at the source: {reference}");
            if let Some((t, id)) = Reference::parse(reference).type_and_id() {
                assert!(ids.contains(&format!("{t}/{id}")), "{}: dangling {path} → {reference}", resource["id"]);
            }
        });
        if resource["resourceType"] != "Provenance" {
            let kept = resource["identifier"].as_array().unwrap().iter().any(|i| i["system"] == w.fhir_base.as_str());
            assert!(kept, "source id kept in identifier: {}", resource["id"]);
        }
    }
    // New ids, and the member's own Patient linked to the previous plan's.
    assert!(!mine.is_empty());
    let patients: Vec<&Value> = stored.iter().filter(|r| r["resourceType"] == "Patient").collect();
    assert_eq!(patients.len(), 2, "the member's own Patient and the previous plan's");
    let own = patients.iter().find(|p| p["id"].as_str().unwrap().starts_with("member-")).unwrap();
    assert!(own["link"][0]["other"]["reference"].as_str().unwrap().starts_with("Patient/s"));
    assert!(own["identifier"].as_array().unwrap().iter().any(|i| i["value"] == w.source_patient.as_str()));
    // PDex §1.7: custodian/transmitter Provenance, one per committed batch, together naming
    // every record that came from the previous plan exactly once.
    let custodian: Vec<&Value> =
        stored.iter().filter(|r| r["id"].as_str().is_some_and(|id| id.starts_with("transfer-"))).collect();
    assert!(custodian.len() as u64 >= p.pages, "{} custodian Provenances for {} pages", custodian.len(), p.pages);
    let mut targeted = vec![];
    for prov in &custodian {
        assert_eq!(prov["activity"]["coding"][0]["code"], "APPEND");
        assert_eq!(prov["reason"][0]["coding"][0]["code"], "RECORDMGT");
        let agents: Vec<&str> = prov["agent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["type"]["coding"][0]["code"].as_str().unwrap())
            .collect();
        assert_eq!(agents, ["transmitter", "custodian"]);
        for target in prov["target"].as_array().unwrap() {
            targeted.push(target["reference"].as_str().unwrap().to_owned());
        }
    }
    let received: HashSet<String> = all
        .iter()
        .filter(|r| r["meta"]["source"].as_str().is_some_and(|s| s.starts_with(&w.fhir_base)))
        .map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()))
        .collect();
    assert_eq!(targeted.len(), received.len(), "each received record targeted once");
    assert_eq!(targeted.into_iter().collect::<HashSet<_>>(), received);
    // Received Provenance is kept, targets rewritten.
    assert!(stored.iter().filter(|r| r["resourceType"] == "Provenance").count() > 10);

    // The audit has every request, and never a token.
    let requests = w.store.transfer_requests("t1").await.unwrap();
    assert!(requests.len() as u64 >= p.pages);
    assert!(requests.iter().all(|r| !r.url.contains("access-token") && r.status == Some(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_again_updates_in_place_and_never_duplicates() {
    let w = world(Setup::default(), None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let first = w.stored().await;
    assert_eq!(w.transfer("t2").await, JobEnd::Completed);
    let second = w.stored().await;
    // The same records (plus the second run's own Provenance), in place: versions went up.
    let ids = |rs: &[Value]| -> HashSet<String> {
        rs.iter()
            .filter(|r| !r["id"].as_str().unwrap().starts_with("transfer-"))
            .map(|r| format!("{}/{}", r["resourceType"], r["id"]))
            .collect()
    };
    assert_eq!(ids(&first), ids(&second));
    let custodian = |rs: &[Value]| rs.iter().filter(|r| r["id"].as_str().unwrap().starts_with("transfer-")).count();
    assert!(custodian(&first) > 0);
    assert_eq!(custodian(&second), 2 * custodian(&first), "the second run's own custodian Provenance, nothing else");
    let condition = second.iter().find(|r| r["resourceType"] == "Condition").unwrap();
    assert_eq!(condition["meta"]["versionId"], "2");
}

/// Records received before record ids were opaque (`<source>-heldout-hiv`) get their opaque id
/// at the next start, everywhere they are named; a new pull then updates them in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_received_before_ids_were_opaque_are_renamed_once_and_pulled_again_in_place() {
    let w = world(Setup::default(), None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let before = w.stored().await;
    // As an earlier Baton stored them: `<source prefix>-<id there>`.
    let received = w.store.received_records(0, 100_000).await.unwrap();
    let legacy: Vec<baton_store::Rename> = received
        .iter()
        .map(|r| baton_store::Rename {
            resource_type: r.resource_type.clone(),
            from: r.id.clone(),
            to: format!("{}-{}", baton_transfer::ingest::source_prefix(&r.source_system), r.source_id),
        })
        .collect();
    w.store.rename_records(&legacy).await.unwrap();
    let sample = &legacy[legacy.len() / 2];
    let old = w.store.read_resource(&sample.resource_type, &sample.to).await.unwrap().expect("stored as of old");
    assert!(old.body.contains(&format!("\"id\":\"{}\"", sample.to)));

    assert_eq!(w.engine.upgrade_stored_records().await.unwrap(), legacy.len() as u64);
    assert_eq!(w.engine.upgrade_stored_records().await.unwrap(), 0, "once");
    let after = w.stored().await;
    let ids = |rs: &[Value]| -> HashSet<String> {
        rs.iter().map(|r| format!("{}/{}", r["resourceType"], r["id"])).collect()
    };
    assert_eq!(ids(&before), ids(&after), "every record has its opaque id again");
    assert_eq!(before, after, "and every reference to it says so");
    assert!(w.store.dangling_references(w.member, 10).await.unwrap().is_empty());
    assert!(w.store.read_resource(&sample.resource_type, &sample.to).await.unwrap().is_none());

    assert_eq!(w.transfer("t2").await, JobEnd::Completed, "a new pull meets no record under an old id");
    let again = w.stored().await;
    let received = |rs: &[Value]| -> HashSet<String> {
        rs.iter()
            .filter(|r| !r["id"].as_str().unwrap().starts_with("transfer-"))
            .map(|r| format!("{}/{}", r["resourceType"], r["id"]))
            .collect()
    };
    assert_eq!(received(&before), received(&again), "updated in place, nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_pull_asks_only_for_what_changed() {
    let w = world(Setup::default(), None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let since = Timestamp::now();
    w.store
        .enqueue_transfer("t2", &w.link, baton_vocab::TransferKind::Incremental, Some(since), Timestamp::now())
        .await
        .unwrap();
    let (_, end) = w.engine.run_once().await.unwrap().unwrap();
    assert_eq!(end, JobEnd::Completed);
    assert!(
        w.script.seen().iter().any(|r| r.contains("$everything") && r.contains("_since=")),
        "{:?}",
        w.script.seen()
    );
    assert_eq!(progress(&w, "t2").await.stored(), 0, "nothing changed at the previous plan since");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_type_searches_when_everything_is_not_offered() {
    let w = world(Setup { hide_everything: true, page_size: 50, ..Setup::default() }, None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let seen = w.script.seen();
    assert!(!seen.iter().any(|r| r.contains("$everything")));
    assert!(seen.iter().any(|r| r.contains("/fhir/ExplanationOfBenefit?patient=")
        && r.contains("service-date=ge")
        && r.contains("_revinclude=Provenance%3Atarget")));
    assert!(seen.iter().any(|r| r.starts_with("GET /fhir/Practitioner/")), "directory entries are read afterwards");
    let source = w.source_counts().await;
    let p = progress(&w, "t1").await;
    for (t, n) in &source {
        assert_eq!(p.types.get(t).map(|c| c.stored).unwrap_or(0), *n, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_records_are_absent_after_exclude_and_present_after_include() {
    let excluded = world(Setup { include_sensitive: false, ..Setup::default() }, None).await;
    assert_eq!(excluded.transfer("t1").await, JobEnd::Completed);
    let stored = excluded.stored().await;
    assert!(stored.iter().all(|r| !sensitivity::is_sensitive(r)), "nothing sensitive stored");
    let p = progress(&excluded, "t1").await;
    assert!(p.excluded.get("label:behavioral_health").copied().unwrap_or(0) > 0, "{:?}", p.excluded);
    assert!(
        p.excluded.keys().any(|k| k.starts_with("classifier:")),
        "unlabelled ones caught by the classifier: {:?}",
        p.excluded
    );
    assert!(p.excluded.values().sum::<u64>() > 20);
    // Nothing even points at what was withheld.
    let withheld_marker = stored.iter().any(|r| r.to_string().contains("dr-ramos"));
    assert!(!withheld_marker, "the behavioral-health practitioner stays out too");

    let included = world(Setup { include_sensitive: true, ..Setup::default() }, None).await;
    assert_eq!(included.transfer("t1").await, JobEnd::Completed);
    let stored = included.stored().await;
    let labelled = stored.iter().filter(|r| !sensitivity::label_reasons(r).is_empty()).count();
    let unlabelled =
        stored.iter().filter(|r| sensitivity::label_reasons(r).is_empty() && sensitivity::is_sensitive(r)).count();
    assert!(labelled > 0 && unlabelled > 0, "labelled {labelled}, unlabelled {unlabelled}");
    assert!(progress(&included, "t1").await.excluded.is_empty());
}

/// Issue 19, item 1: a Provenance that names a sensitive record would tell a reader who may not
/// see the record who recorded what about it, and when.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_of_sensitive_records_is_sensitive_and_this_plans_own_never_lists_them_beside_others() {
    let w = world(Setup { include_sensitive: true, page_size: 40, ..Setup::default() }, None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let query = ResourceQuery { member_account: Some(w.member), limit: 10_000, ..Default::default() };
    let rows = w.store.search_resources(&query).await.unwrap().resources;
    let sensitive: HashSet<String> =
        rows.iter().filter(|r| r.sensitive).map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
    let (mut received, mut custodians) = (0, 0);
    for row in rows.iter().filter(|r| r.resource_type == "Provenance") {
        let body: Value = serde_json::from_str(&row.body).unwrap();
        let targets: Vec<&str> =
            body["target"].as_array().unwrap().iter().filter_map(|t| t["reference"].as_str()).collect();
        let names_sensitive = targets.iter().any(|t| sensitive.contains(*t));
        assert!(!names_sensitive || row.sensitive, "{} names a sensitive record but is not sensitive", row.id);
        if row.id.starts_with("transfer-") {
            if row.sensitive {
                custodians += 1;
                assert!(targets.iter().all(|t| sensitive.contains(*t)), "{}: sensitive records apart", row.id);
            }
        } else if names_sensitive {
            received += 1;
        }
    }
    assert!(received > 0, "the previous plan's own Provenance of sensitive care arrived sensitive");
    assert!(custodians > 0, "this plan's Provenance of sensitive records is one of their own");
}

/// A Provenance that comes before the record it names (a server sorting by type) is left out
/// with that record when the member left sensitive records out: counted, never kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provenance_ahead_of_a_record_left_out_is_left_out_with_it() {
    let w = world(Setup { include_sensitive: false, page_size: 40, ..Setup::default() }, None).await;
    w.script.add("", Fault::ProvenanceFirst, 0);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let p = progress(&w, "t1").await;
    let provenance = p.types.get("Provenance").cloned().unwrap_or_default();
    assert!(provenance.excluded > 0, "{provenance:?}");
    assert_eq!(provenance.received, provenance.stored + provenance.excluded + provenance.rejected, "{provenance:?}");
    let stored = w.stored().await;
    assert!(stored.iter().all(|r| !sensitivity::is_sensitive(r)), "nothing sensitive stored");
    for r in stored.iter().filter(|r| r["resourceType"] == "Provenance") {
        assert!(!r["target"].to_string().contains("masked"), "kept with a target masked: {r}");
    }
    assert_eq!(p.excluded.values().sum::<u64>(), p.excluded_total());
}

/// A transfer stopped halfway and retried ends as one that never stopped: the same records,
/// the same counts of what was left out (nothing fetched or counted twice), and a Provenance
/// arriving after the stop that names a record left out before it is left out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_transfer_ends_as_one_that_never_stopped() {
    let setup = || Setup { include_sensitive: false, page_size: 40, hide_everything: true, ..Setup::default() };
    let whole = world(setup(), None).await;
    whole.script.add("", Fault::NoRevinclude, 0);
    assert_eq!(whole.transfer("t1").await, JobEnd::Completed);

    let resumed = world(setup(), None).await;
    resumed.script.add("/Provenance?", Fault::Truncate, 0);
    resumed.script.add("", Fault::NoRevinclude, 0);
    assert!(matches!(resumed.transfer("t1").await, JobEnd::Failed(_)));
    let halfway = progress(&resumed, "t1").await;
    assert!(halfway.excluded_total() > 0, "something was left out before it stopped");
    assert_eq!(halfway.types.get("Provenance").map(|c| c.received), None, "no Provenance came before it stopped");
    resumed.script.clear();
    resumed.script.add("", Fault::NoRevinclude, 0);
    assert!(resumed.store.retry_transfer("t1", "test", Timestamp::now()).await.unwrap());
    let end = loop {
        match resumed.engine.run_once().await.unwrap() {
            Some((id, end)) if id == "t1" => break end,
            Some(_) => continue,
            None => panic!("the transfer was not claimable"),
        }
    };
    assert_eq!(end, JobEnd::Completed);

    let (a, b) = (progress(&whole, "t1").await, progress(&resumed, "t1").await);
    assert!(a.types["Provenance"].excluded > 0, "{:?}", a.types["Provenance"]);
    assert_eq!(a.excluded, b.excluded, "left out, by reason");
    for (t, counts) in &a.types {
        let other = b.types.get(t).cloned().unwrap_or_default();
        assert_eq!((counts.stored, counts.excluded), (other.stored, other.excluded), "{t}");
    }
    assert_eq!(by_type(&whole.stored().await), by_type(&resumed.stored().await));
}

/// Issue 16, item 2: Provenance is outside the Patient compartment, so a server's
/// `$everything` may leave it out. Then it is asked for by the records that arrived, and the
/// member's Provenance all comes, once, pointing at the records here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_an_everything_left_out_is_asked_for_by_target() {
    let w = world(Setup { page_size: 40, ..Setup::default() }, None).await;
    w.script.add("$everything", Fault::NoRevinclude, 0);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let seen = w.script.seen();
    let by_target: Vec<&String> = seen.iter().filter(|r| r.contains("/Provenance?target=")).collect();
    assert!(by_target.len() > 1, "asked in batches: {by_target:?}");

    let source = w.source_counts().await;
    let p = progress(&w, "t1").await;
    assert_eq!(p.types.get("Provenance").map(|c| c.stored), source.get("Provenance").copied(), "every Provenance, once");
    // Every resource here: the member's records and the directory entries they name.
    let everything = w.store.search_resources(&ResourceQuery { limit: 10_000, ..Default::default() }).await.unwrap();
    let stored: Vec<Value> = everything.resources.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    let ids: HashSet<String> =
        stored.iter().map(|r| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())).collect();
    for provenance in stored.iter().filter(|r| r["resourceType"] == "Provenance") {
        for target in provenance["target"].as_array().unwrap() {
            let reference = target["reference"].as_str().unwrap();
            assert!(ids.contains(reference), "a received Provenance targets {reference}, which is here");
        }
    }
}

/// Issue 19, item 2: a previous plan cannot file a record under another member of this plan
/// by naming them on this plan's own base, and nothing is followed to a third server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_this_plan_or_a_third_server_are_withheld_and_counted() {
    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::Hostile, 1);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let planted = w
        .store
        .search_resources(&ResourceQuery {
            resource_types: vec!["Condition".into()],
            identifier: Some(baton_store::IndexedIdentifier { system: w.fhir_base.clone(), value: "hostile-1".into() }),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .resources;
    assert_eq!(planted.len(), 1, "it is the member's record, kept");
    let own_patient = w.store.account_by_id(w.member).await.unwrap().unwrap().patient_id.unwrap();
    assert_eq!(planted[0].patient_id.as_deref(), Some(own_patient.as_str()), "filed under this transfer's member");
    assert_eq!(planted[0].member_account, Some(w.member.0));
    assert!(!planted[0].body.contains("member-999") && !planted[0].body.contains("third.example"));
    let elsewhere = ResourceQuery { patient_id: Some("member-999".into()), limit: 10, ..Default::default() };
    assert_eq!(w.store.count_resources(&elsewhere).await.unwrap(), 0, "nothing in the other member's record");
    assert_eq!(progress(&w, "t1").await.foreign_references, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_amounts_are_left_behind_unless_kept() {
    let w = world(Setup { member: "James", financial: true, ..Setup::default() }, None).await;
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let claims: Vec<Value> =
        w.stored().await.into_iter().filter(|r| r["resourceType"] == "ExplanationOfBenefit").collect();
    assert!(!claims.is_empty());
    for claim in claims {
        assert!(claim.get("total").is_none() && claim.get("payment").is_none());
        assert!(!claim.to_string().contains("\"amount\""), "{claim}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_the_retry_after() {
    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::Status(429, Some(1)), 1);
    let started = Instant::now();
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    assert!(started.elapsed().as_millis() >= 1000, "waited the Retry-After");
    let requests = w.store.transfer_requests("t1").await.unwrap();
    assert!(requests.iter().any(|r| r.status == Some(429)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::Status(500, None), 2);
    w.script.add("$everything", Fault::Status(503, None), 1);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let statuses: Vec<Option<i32>> = w.store.transfer_requests("t1").await.unwrap().iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == Some(500)).count(), 2);
    assert_eq!(statuses.iter().filter(|s| **s == Some(503)).count(), 1);
    let source = w.source_counts().await;
    assert!(progress(&w, "t1").await.stored() as u64 >= source.values().sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_keeps_coming_back_cut_off_fails_the_transfer_clearly() {
    let w = world(Setup { page_size: 40, ..Setup::default() }, None).await;
    w.script.add("_cursor", Fault::Truncate, 0);
    let end = w.transfer("t1").await;
    let JobEnd::Failed(why) = end else { panic!("{end:?}") };
    assert!(why.contains("kept failing") && why.contains("cut off"), "{why}");
    let transfer = w.store.transfer("t1").await.unwrap().unwrap();
    assert_eq!(transfer.state, baton_vocab::TransferState::Failed);
    assert!(transfer.error.unwrap().contains("cut off"));
    assert_eq!(transfer.pages_done, 1, "the first page is kept; the transfer can be retried from there");
    // A malformed page (not JSON) likewise.
    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::Garbage, 0);
    let JobEnd::Failed(why) = w.transfer("t1").await else { panic!() };
    assert!(why.contains("not valid JSON"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_server_is_not_followed() {
    let w = world(Setup { page_size: 40, ..Setup::default() }, None).await;
    w.script.add("$everything", Fault::ForeignNext, 1);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let requests = w.store.transfer_requests("t1").await.unwrap();
    assert!(requests.iter().all(|r| !r.url.contains("elsewhere.example")));
    let events = w.store.transfer_events("t1").await.unwrap();
    assert!(events.iter().any(|e| e.kind == baton_vocab::EventKind::Warning && e.detail.contains("another server")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_and_the_pull_resumes() {
    let w = world(Setup { page_size: 40, ..Setup::default() }, None).await;
    w.script.add("_cursor", Fault::Status(401, None), 1);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    assert!(w.script.seen().iter().any(|r| r == "POST /oauth/token"), "refreshed");
    let link = w.store.link("link-1").await.unwrap().unwrap();
    let cipher = baton_transfer::TokenCipher::new(&KEY);
    let refresh = cipher.open_for(link.refresh_token.as_deref().unwrap(), &baton_store::PayerLink::token_place(&link.id, "refresh")).unwrap();
    assert_ne!(refresh, w.authorization.refresh_token, "the rotated refresh token was stored");
    assert_ne!(link.refresh_token.unwrap(), refresh, "stored sealed");
    let source = w.source_counts().await;
    for (t, n) in &source {
        assert_eq!(progress(&w, "t1").await.types.get(t).map(|c| c.stored).unwrap_or(0), *n, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_asks_the_member_to_authorize_again() {
    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::Status(401, None), 0);
    let end = w.transfer("t1").await;
    assert!(matches!(end, JobEnd::NeedsReauthorization(_)), "{end:?}");
    assert_eq!(w.store.transfer("t1").await.unwrap().unwrap().state, baton_vocab::TransferState::NeedsReauthorization);
    // The refresh token was spent by the first refresh; a second 401 means the access is gone.
    let link = w.store.link("link-1").await.unwrap().unwrap();
    assert!(link.state == baton_vocab::LinkState::NeedsReauthorization || link.state == baton_vocab::LinkState::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_types_are_recorded_and_the_rest_continues() {
    let w = world(Setup { hide_everything: true, ..Setup::default() }, None).await;
    w.script.add("/fhir/Immunization?", Fault::Status(403, None), 0);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let p = progress(&w, "t1").await;
    assert!(p.not_permitted.contains(&"Immunization".to_owned()));
    assert!(p.types.get("Condition").is_some_and(|c| c.stored > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_rejected_with_reasons_and_unknown_elements_kept() {
    let w = world(Setup::default(), None).await;
    w.script.add("$everything", Fault::BadEntries, 1);
    assert_eq!(w.transfer("t1").await, JobEnd::Completed);
    let rejected = w.store.transfer_rejections("t1").await.unwrap();
    assert!(rejected.iter().any(|r| r.reason.contains("no valid id")), "{rejected:?}");
    assert!(rejected.iter().any(|r| r.source == "Binary/b1" && r.reason.contains("not a type")));
    assert!(
        rejected.iter().any(|r| r.source == "Condition/someone-else-1" && r.reason.contains("another patient")),
        "a record about someone else is not the member's to bring: {rejected:?}"
    );
    assert_eq!(progress(&w, "t1").await.rejected, 3);
    let stored = w.stored().await;
    let fine = stored.iter().find(|r| r["unknownElement"]["kept"] == true).expect("unknown elements are kept");
    assert_eq!(fine["resourceType"], "Condition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawn_consent_stops_the_pull() {
    let w = world(Setup::default(), None).await;
    w.store.withdraw_consent("consent-1", Timestamp::now()).await.unwrap();
    w.store.enqueue_transfer("t1", &w.link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    let (_, end) = w.engine.run_once().await.unwrap().unwrap();
    assert!(matches!(end, JobEnd::Cancelled(_)), "{end:?}");
    assert!(w.stored().await.iter().all(|r| r["resourceType"] == "Patient" || r.is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_into_postgresql() {
    baton_store::testing::on_postgres(|store| async move {
        let w = world(Setup { page_size: 80, ..Setup::default() }, Some(store)).await;
        assert_eq!(w.transfer("t1").await, JobEnd::Completed);
        let source = w.source_counts().await;
        let p = progress(&w, "t1").await;
        for (t, n) in &source {
            assert_eq!(p.types.get(t).map(|c| c.stored).unwrap_or(0), *n, "{t}");
        }
    })
    .await;
}

/// On PostgreSQL two page commits run at once; pages that carry the same resource are
/// committed one after the other, each as the next version of that resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_carry_the_same_resource_update_it_in_page_order() {
    baton_store::testing::on_postgres(|store| async move {
        let w = world(Setup { page_size: 40, ..Setup::default() }, Some(store)).await;
        w.script.add("/fhir/", Fault::SharedEntry, 0);
        assert_eq!(w.transfer("t1").await, JobEnd::Completed);
        let p = progress(&w, "t1").await;
        assert!(p.pages >= 3, "{} pages", p.pages);
        let stored = w.stored().await;
        let shared: Vec<&Value> = stored.iter().filter(|r| r["code"]["text"] == "Found on every page").collect();
        assert_eq!(shared.len(), 1, "stored once");
        assert_eq!(shared[0]["meta"]["versionId"], p.pages.to_string(), "written again by every page");
        let source = w.source_counts().await;
        for (t, n) in source.iter().filter(|(t, _)| *t != "Condition") {
            assert_eq!(p.types.get(t).map(|c| c.stored).unwrap_or(0), *n, "{t}");
        }
    })
    .await;
}
