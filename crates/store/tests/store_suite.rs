//! The store suite: every case runs on SQLite and on PostgreSQL.

use baton_store::testing::{on_postgres, on_sqlite};
use baton_store::{
    AccountId, IndexedIdentifier, IndexedReference, NewAccount, ResourceQuery, ResourceWrite, Store, StoreError,
    Timestamp, Unique,
};
use baton_vocab::{Role, Roles};
use serde_json::{Value, json};
use time::macros::date;

/// Declares each `async fn case(store: Store)` as a test on both backends.
macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $case() { super::on_sqlite(super::$case).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $case() { super::on_postgres(super::$case).await } )*
        }
    };
}

store_suite!(
    migrations_are_idempotent,
    accounts_round_trip,
    accounts_are_counted_by_role,
    duplicate_username_is_a_conflict,
    password_hash_is_replaced,
    sign_in_failures_are_counted_per_key_and_window,
    resource_versions_and_meta,
    resource_read_and_delete,
    search_by_patient_and_type,
    paging_returns_every_resource_once_and_ignores_later_writes,
    search_by_identifier_and_reference,
    search_by_dates_and_sensitivity,
    rejects_a_body_that_is_not_an_object,
    a_batch_larger_than_a_chunk_with_repeats,
    a_batch_of_new_and_existing_resources,
    directory_resources_referenced_by_a_patient,
    dangling_references_among_named_targets,
);

fn member(username: &str, member_id: &str) -> NewAccount {
    NewAccount {
        username: username.into(),
        display_name: format!("{username} display"),
        password_hash: Some("$argon2id$stub".into()),
        roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
        member_id: Some(member_id.into()),
        birth_date: Some(date!(1980 - 02 - 03)),
        coverage_start: Some(date!(2026 - 01 - 01)),
        patient_id: None,
    }
}

fn resource(resource_type: &str, id: &str, patient: &str) -> ResourceWrite {
    ResourceWrite {
        resource_type: resource_type.into(),
        id: id.into(),
        member_account: None,
        patient_id: Some(patient.into()),
        source_system: None,
        source_id: None,
        security: vec![],
        sensitive: false,
        date_start: None,
        date_end: None,
        identifiers: vec![],
        references: vec![],
        body: json!({ "resourceType": resource_type, "id": id }),
    }
}

async fn migrations_are_idempotent(store: Store) {
    store.migrate().await.expect("second migrate is a no-op");
    store.ping().await.expect("ping");
    assert_eq!(store.count_accounts().await.unwrap(), 0);
}

async fn accounts_round_trip(store: Store) {
    let id = store.insert_account(&member("maria", "M-100")).await.unwrap();
    let by_name = store.account_by_username("maria").await.unwrap().expect("found by username");
    assert_eq!(by_name.id, id);
    assert_eq!(by_name.display_name, "maria display");
    assert_eq!(by_name.member_id.as_deref(), Some("M-100"));
    assert_eq!(by_name.birth_date, Some(date!(1980 - 02 - 03)));
    assert!(by_name.created_at > 0);
    assert_eq!(store.account_by_id(id).await.unwrap(), Some(by_name.clone()));
    assert_eq!(store.account_by_member_id("M-100").await.unwrap(), Some(by_name));
    assert_eq!(store.account_by_username("nobody").await.unwrap(), None);
    store.set_account_patient(id, "pat-1").await.unwrap();
    let linked = store.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(linked.patient_id.as_deref(), Some("pat-1"));
    assert_eq!(store.count_accounts().await.unwrap(), 1);
}

async fn accounts_are_counted_by_role(store: Store) {
    store.insert_account(&member("maria", "M-1")).await.unwrap();
    store.insert_account(&member("james", "M-2")).await.unwrap();
    let staff =
        NewAccount { username: "sam".into(), roles: Roles::of([Role::Staff, Role::Admin]), ..Default::default() };
    store.insert_account(&staff).await.unwrap();
    let privacy = NewAccount { username: "pia".into(), roles: Roles::of([Role::Privacy]), ..Default::default() };
    store.insert_account(&privacy).await.unwrap();
    assert_eq!(store.count_accounts_with_role(baton_vocab::Role::Member).await.unwrap(), 2);
    assert_eq!(store.count_accounts_with_role(baton_vocab::Role::Admin).await.unwrap(), 1);
    assert_eq!(store.count_accounts_with_role(baton_vocab::Role::Staff).await.unwrap(), 1);
    assert_eq!(store.count_accounts_with_role(baton_vocab::Role::Privacy).await.unwrap(), 1);
}

async fn duplicate_username_is_a_conflict(store: Store) {
    store.insert_account(&member("maria", "M-1")).await.unwrap();
    let err = store.insert_account(&member("maria", "M-2")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Unique::AccountUsername)), "{err:?}");
    let err = store.insert_account(&member("other", "M-1")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Unique::AccountMemberId)), "member id is unique too: {err:?}");
    assert_eq!(store.count_accounts().await.unwrap(), 1);
}

async fn password_hash_is_replaced(store: Store) {
    let id = store.insert_account(&member("maria", "M-1")).await.unwrap();
    store.set_password_hash(id, "$argon2id$new").await.unwrap();
    let account = store.account_by_id(id).await.unwrap().unwrap();
    assert_eq!(account.password_hash.as_deref(), Some("$argon2id$new"));
    let err = store.set_password_hash(AccountId(id.0 + 1000), "x").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn sign_in_failures_are_counted_per_key_and_window(store: Store) {
    let t0 = Timestamp::from_millis(1_000_000);
    for i in 0..3 {
        store
            .record_sign_in_failure(&["account:maria", "ip:10.0.0.1"], Timestamp::from_millis(t0.millis() + i))
            .await
            .unwrap();
    }
    store.record_sign_in_failure(&["account:other"], t0).await.unwrap();
    let (count, oldest) = store.sign_in_failures_since("account:maria", t0).await.unwrap();
    assert_eq!((count, oldest), (3, Some(t0)));
    let (count, _) =
        store.sign_in_failures_since("account:maria", Timestamp::from_millis(t0.millis() + 2)).await.unwrap();
    assert_eq!(count, 1, "only failures inside the window count");
    assert_eq!(store.sign_in_failures_since("ip:10.0.0.1", t0).await.unwrap().0, 3);
    store.clear_sign_in_failures("account:maria").await.unwrap();
    assert_eq!(store.sign_in_failures_since("account:maria", t0).await.unwrap(), (0, None));
    assert_eq!(store.sign_in_failures_since("ip:10.0.0.1", t0).await.unwrap().0, 3, "other keys kept");
    let pruned = store.prune_sign_in_failures(Timestamp::from_millis(t0.millis() + 1)).await.unwrap();
    assert_eq!(pruned, 2, "the ip failure at t0 and account:other at t0");
}

async fn resource_versions_and_meta(store: Store) {
    let first = store.put_resources(vec![resource("Condition", "c1", "p1")]).await.unwrap();
    assert_eq!(first[0].version_id, 1);
    let body: Value = serde_json::from_str(&first[0].body).unwrap();
    assert_eq!(body["meta"]["versionId"], "1");
    assert_eq!(body["meta"]["lastUpdated"], first[0].last_updated.to_fhir_instant());

    let mut changed = resource("Condition", "c1", "p1");
    changed.body =
        json!({"resourceType": "Condition", "id": "c1", "meta": {"profile": ["x"]}, "note": [{"text": "v2"}]});
    let second = store.put_resources(vec![changed]).await.unwrap();
    assert_eq!(second[0].version_id, 2);
    assert_eq!(second[0].seq, first[0].seq, "an update keeps its place in search order");
    let read = store.read_resource("Condition", "c1").await.unwrap().unwrap();
    let body: Value = serde_json::from_str(&read.body).unwrap();
    assert_eq!(body["meta"]["versionId"], "2");
    assert_eq!(body["meta"]["profile"][0], "x", "other meta elements are kept");
    assert_eq!(body["note"][0]["text"], "v2");
}

async fn resource_read_and_delete(store: Store) {
    let mut write = resource("Patient", "p1", "p1");
    write.source_system = Some("https://old.example/fhir".into());
    write.source_id = Some("src-9".into());
    write.security = vec![
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R".into(),
        "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY".into(),
    ];
    write.sensitive = true;
    store.put_resources(vec![write]).await.unwrap();
    let read = store.read_resource("Patient", "p1").await.unwrap().unwrap();
    assert_eq!(read.source_system.as_deref(), Some("https://old.example/fhir"));
    assert_eq!(read.source_id.as_deref(), Some("src-9"));
    assert!(read.sensitive);
    assert_eq!(
        read.security_labels().collect::<Vec<_>>(),
        [
            "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
            "http://terminology.hl7.org/CodeSystem/v3-ActCode|PSY"
        ]
    );
    assert_eq!(store.read_resource("Patient", "nope").await.unwrap(), None);
    assert_eq!(store.read_resource("Condition", "p1").await.unwrap(), None, "type is part of the key");
    assert!(store.delete_resource("Patient", "p1").await.unwrap());
    assert!(!store.delete_resource("Patient", "p1").await.unwrap());
    let tombstone = store.read_resource("Patient", "p1").await.unwrap().expect("a tombstone remains");
    assert!(tombstone.deleted_at.is_some());
    assert!(!tombstone.body.contains("old.example") && !tombstone.sensitive, "the content is erased");
    let search = ResourceQuery { patient_id: Some("p1".into()), limit: 10, ..Default::default() };
    assert!(store.search_resources(&search).await.unwrap().resources.is_empty(), "deleted resources are not found");
    // Writing it again brings it back.
    store.put_resources(vec![resource("Patient", "p1", "p1")]).await.unwrap();
    assert_eq!(store.read_resource("Patient", "p1").await.unwrap().unwrap().deleted_at, None);
}

async fn search_by_patient_and_type(store: Store) {
    store
        .put_resources(vec![
            resource("Condition", "a1", "pa"),
            resource("Condition", "b1", "pb"),
            resource("Encounter", "a2", "pa"),
            resource("Condition", "a3", "pa"),
        ])
        .await
        .unwrap();
    let query = ResourceQuery {
        resource_types: vec!["Condition".into()],
        patient_id: Some("pa".into()),
        limit: 50,
        ..Default::default()
    };
    let page = store.search_resources(&query).await.unwrap();
    let ids: Vec<_> = page.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a1", "a3"]);
    assert_eq!(page.next_after_seq, None);
    assert_eq!(store.count_resources(&query).await.unwrap(), 2);

    let all_of_a = ResourceQuery { patient_id: Some("pa".into()), limit: 50, ..Default::default() };
    assert_eq!(store.count_resources(&all_of_a).await.unwrap(), 3);
    let by_id = ResourceQuery { ids: vec!["b1".into(), "a2".into()], limit: 50, ..Default::default() };
    let ids: Vec<_> = store.search_resources(&by_id).await.unwrap().resources.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["b1", "a2"]);
}

async fn paging_returns_every_resource_once_and_ignores_later_writes(store: Store) {
    let writes = (0..25).map(|i| resource("Observation", &format!("o{i:02}"), "p1")).collect();
    store.put_resources(writes).await.unwrap();
    let mut query = ResourceQuery {
        resource_types: vec!["Observation".into()],
        patient_id: Some("p1".into()),
        limit: 10,
        ..Default::default()
    };
    let total = store.count_resources(&query).await.unwrap();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.search_resources(&query).await.unwrap();
        pages += 1;
        seen.extend(page.resources.iter().map(|r| r.id.clone()));
        if pages == 1 {
            // Concurrent writes between pages: a new resource and an update of one already seen.
            store
                .put_resources(vec![resource("Observation", "late", "p1"), resource("Observation", "o00", "p1")])
                .await
                .unwrap();
        }
        match page.next_after_seq {
            Some(after) => {
                query.after_seq = Some(after);
                query.snapshot_seq = Some(page.snapshot_seq);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(total, 25);
    assert_eq!(seen.len(), 25, "count equals total: {seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25, "no resource twice");
    assert!(!seen.contains(&"late".to_string()), "written after the first page");
}

async fn search_by_identifier_and_reference(store: Store) {
    let mut eob = resource("ExplanationOfBenefit", "e1", "p1");
    eob.identifiers = vec![IndexedIdentifier { system: "urn:claims".into(), value: "CLM-1".into() }];
    eob.references =
        vec![IndexedReference { path: "coverage".into(), target_type: "Coverage".into(), target_id: "cov1".into() }];
    let mut prov = resource("Provenance", "pr1", "p1");
    prov.references = vec![IndexedReference {
        path: "target".into(),
        target_type: "ExplanationOfBenefit".into(),
        target_id: "e1".into(),
    }];
    store.put_resources(vec![eob, prov, resource("ExplanationOfBenefit", "e2", "p1")]).await.unwrap();

    let by_identifier = ResourceQuery {
        identifier: Some(IndexedIdentifier { system: String::new(), value: "CLM-1".into() }),
        limit: 10,
        ..Default::default()
    };
    let found = store.search_resources(&by_identifier).await.unwrap().resources;
    assert_eq!(found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["e1"]);
    let wrong_system = ResourceQuery {
        identifier: Some(IndexedIdentifier { system: "urn:other".into(), value: "CLM-1".into() }),
        limit: 10,
        ..Default::default()
    };
    assert!(store.search_resources(&wrong_system).await.unwrap().resources.is_empty());

    let revinclude = ResourceQuery {
        resource_types: vec!["Provenance".into()],
        reference_path: Some("target".into()),
        references_to: vec![("ExplanationOfBenefit".into(), "e1".into()), ("ExplanationOfBenefit".into(), "e2".into())],
        limit: 10,
        ..Default::default()
    };
    let found = store.search_resources(&revinclude).await.unwrap().resources;
    assert_eq!(found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["pr1"]);

    // Replacing a resource replaces its index rows.
    let mut eob = resource("ExplanationOfBenefit", "e1", "p1");
    eob.identifiers = vec![IndexedIdentifier { system: "urn:claims".into(), value: "CLM-2".into() }];
    store.put_resources(vec![eob]).await.unwrap();
    assert!(store.search_resources(&by_identifier).await.unwrap().resources.is_empty());
}

async fn search_by_dates_and_sensitivity(store: Store) {
    let day = |d: i64| Timestamp::from_millis(d * 86_400_000);
    let mut old = resource("Encounter", "old", "p1");
    (old.date_start, old.date_end) = (Some(day(10)), Some(day(12)));
    let mut spanning = resource("Encounter", "spanning", "p1");
    (spanning.date_start, spanning.date_end) = (Some(day(15)), Some(day(40)));
    let mut recent = resource("Encounter", "recent", "p1");
    (recent.date_start, recent.date_end) = (Some(day(30)), None);
    recent.sensitive = true;
    store.put_resources(vec![old, spanning, recent, resource("Encounter", "undated", "p1")]).await.unwrap();

    let ids = |query: ResourceQuery| {
        let store = store.clone();
        async move { store.search_resources(&query).await.unwrap().resources.into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    let from_20 = ResourceQuery { date_from: Some(day(20)), limit: 10, ..Default::default() };
    assert_eq!(ids(from_20.clone()).await, ["spanning", "recent"]);
    let until_14 = ResourceQuery { date_to: Some(day(14)), limit: 10, ..Default::default() };
    assert_eq!(ids(until_14).await, ["old"]);
    let with_undated = ResourceQuery { include_undated: true, ..from_20.clone() };
    assert_eq!(ids(with_undated).await, ["spanning", "recent", "undated"]);
    let not_sensitive = ResourceQuery { exclude_sensitive: true, ..from_20 };
    assert_eq!(ids(not_sensitive).await, ["spanning"]);
    let future = ResourceQuery {
        last_updated_from: Some(Timestamp::now().plus(time::Duration::hours(1))),
        limit: 10,
        ..Default::default()
    };
    assert!(ids(future).await.is_empty());
    let past = ResourceQuery {
        last_updated_from: Some(Timestamp::now().plus(time::Duration::hours(-1))),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(past).await.len(), 4);
}

async fn rejects_a_body_that_is_not_an_object(store: Store) {
    let mut bad = resource("Patient", "p1", "p1");
    bad.body = json!(["not", "a", "resource"]);
    let err = store.put_resources(vec![resource("Patient", "ok", "ok"), bad]).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert_eq!(store.read_resource("Patient", "ok").await.unwrap(), None, "the batch is all or nothing");
}

async fn directory_resources_referenced_by_a_patient(store: Store) {
    let shared = |t: &str, id: &str| ResourceWrite { patient_id: None, ..resource(t, id, "") };
    let referring = |id: &str, patient: &str, target: &str, sensitive: bool| {
        let mut w = resource("Encounter", id, patient);
        w.sensitive = sensitive;
        w.references =
            vec![IndexedReference { path: "ref".into(), target_type: "Practitioner".into(), target_id: target.into() }];
        w
    };
    store
        .put_resources(vec![
            shared("Practitioner", "dr-a"),
            shared("Practitioner", "dr-b"),
            shared("Practitioner", "dr-secret"),
            shared("Practitioner", "dr-nobody"),
            referring("e1", "p1", "dr-a", false),
            referring("e2", "p2", "dr-b", false),
            referring("e3", "p1", "dr-secret", true),
        ])
        .await
        .unwrap();
    let query = ResourceQuery {
        no_compartment: true,
        referenced_by_patient: Some("p1".into()),
        limit: 10,
        ..Default::default()
    };
    let ids = |q: &ResourceQuery| {
        let store = store.clone();
        let q = q.clone();
        async move { store.search_resources(&q).await.unwrap().resources.into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    assert_eq!(ids(&query).await, ["dr-a", "dr-secret"]);
    let without_sensitive = ResourceQuery { exclude_sensitive: true, ..query };
    assert_eq!(ids(&without_sensitive).await, ["dr-a"], "a practitioner seen only in sensitive care stays hidden");
}

async fn a_batch_larger_than_a_chunk_with_repeats(store: Store) {
    let mut writes: Vec<ResourceWrite> = (0..1000)
        .map(|i| {
            let mut w = resource("Observation", &format!("o{i}"), "p1");
            w.identifiers = vec![IndexedIdentifier { system: "urn:x".into(), value: format!("v{i}") }];
            w
        })
        .collect();
    // The same resource twice in one batch: the last one wins, stored once.
    let mut again = resource("Observation", "o5", "p1");
    again.body = json!({"resourceType": "Observation", "id": "o5", "status": "amended"});
    writes.push(again);
    let stored = store.put_resources(writes).await.unwrap();
    assert_eq!(stored.len(), 1000);
    let o5 = store.read_resource("Observation", "o5").await.unwrap().unwrap();
    assert!(o5.body.contains("amended"));
    let query = ResourceQuery { patient_id: Some("p1".into()), limit: 10, ..Default::default() };
    assert_eq!(store.count_resources(&query).await.unwrap(), 1000);
    // Writing them all again updates in place: versions go up, nothing is duplicated.
    let rewrites = (0..1000).map(|i| resource("Observation", &format!("o{i}"), "p1")).collect();
    let stored = store.put_resources(rewrites).await.unwrap();
    assert!(stored.iter().all(|r| r.version_id == 2));
    assert_eq!(store.count_resources(&query).await.unwrap(), 1000);
    let by_identifier = ResourceQuery {
        identifier: Some(IndexedIdentifier { system: "urn:x".into(), value: "v7".into() }),
        limit: 10,
        ..Default::default()
    };
    assert!(store.search_resources(&by_identifier).await.unwrap().resources.is_empty(), "old index rows replaced");
}

/// New resources are inserted straight away and existing ones updated: one batch can hold
/// both, in any order, and each gets the version and index rows it would have alone.
async fn a_batch_of_new_and_existing_resources(store: Store) {
    let indexed = |id: &str, value: &str| {
        let mut w = resource("Observation", id, "p1");
        w.identifiers = vec![IndexedIdentifier { system: "urn:x".into(), value: value.into() }];
        w.references =
            vec![IndexedReference { path: "ref".into(), target_type: "Encounter".into(), target_id: value.into() }];
        w
    };
    let first: Vec<ResourceWrite> = (0..300).filter(|i| i % 3 == 0).map(|i| indexed(&format!("o{i}"), "old")).collect();
    let first = store.put_resources(first).await.unwrap();
    assert!(first.iter().all(|r| r.version_id == 1));
    assert!(store.delete_resource("Observation", "o3").await.unwrap());

    let mixed: Vec<ResourceWrite> = (0..300).map(|i| indexed(&format!("o{i}"), "new")).collect();
    let stored = store.put_resources(mixed).await.unwrap();
    let ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, (0..300).map(|i| format!("o{i}")).collect::<Vec<_>>(), "in the order given");
    for r in &stored {
        let n: usize = r.id[1..].parse().unwrap();
        let expected = match n {
            3 => 3, // written, deleted (a tombstone is a version), written again
            n if n % 3 == 0 => 2,
            _ => 1,
        };
        assert_eq!(r.version_id, expected, "{}", r.id);
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["meta"]["versionId"], expected.to_string(), "{}", r.id);
        assert_eq!(body["meta"]["lastUpdated"], r.last_updated.to_fhir_instant());
        assert_eq!(body["id"], r.id.as_str(), "the rest of the body as written");
        assert_eq!(store.read_resource("Observation", &r.id).await.unwrap().as_ref(), Some(r));
    }
    let o0 = stored.iter().find(|r| r.id == "o0").unwrap();
    assert_eq!(o0.seq, first[0].seq, "an update keeps its place");
    assert!(store.read_resource("Observation", "o3").await.unwrap().unwrap().deleted_at.is_none(), "written again");

    let count = |value: &str| {
        let store = store.clone();
        let query = ResourceQuery {
            identifier: Some(IndexedIdentifier { system: "urn:x".into(), value: value.into() }),
            limit: 1000,
            ..Default::default()
        };
        async move { store.count_resources(&query).await.unwrap() }
    };
    assert_eq!(count("old").await, 0, "the old index rows of updated resources are gone");
    assert_eq!(count("new").await, 300, "one index row per resource, none twice");
    let referring =
        ResourceQuery { references_to: vec![("Encounter".into(), "new".into())], limit: 1000, ..Default::default() };
    assert_eq!(store.count_resources(&referring).await.unwrap(), 300);

    // Another resource from the same source id: refused as before, and nothing of its batch stays.
    let from_source = |id: &str| ResourceWrite {
        source_system: Some("https://old.example/fhir".into()),
        source_id: Some("src-1".into()),
        ..resource("Observation", id, "p1")
    };
    store.put_resources(vec![from_source("s1")]).await.unwrap();
    let err = store.put_resources(vec![resource("Observation", "fresh", "p1"), from_source("s2")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.read_resource("Observation", "fresh").await.unwrap(), None, "the batch is all or nothing");
    assert_eq!(store.read_resource("Observation", "s2").await.unwrap(), None);
}

/// A transfer checks only the targets its records named and did not write; among those, the
/// answer is the same as checking every reference of the member's record.
async fn dangling_references_among_named_targets(store: Store) {
    let alex = store.insert_account(&member("alex", "M1")).await.unwrap();
    let sam = store.insert_account(&member("sam", "M2")).await.unwrap();
    let referring = |id: &str, account: AccountId, targets: &[(&str, &str)]| {
        let mut w = resource("Encounter", id, "p1");
        w.member_account = Some(account);
        w.references = targets
            .iter()
            .map(|(t, i)| IndexedReference { path: "ref".into(), target_type: (*t).into(), target_id: (*i).into() })
            .collect();
        w
    };
    store
        .put_resources(vec![
            resource("Practitioner", "here", ""),
            resource("Practitioner", "gone", ""),
            referring("e1", alex, &[("Practitioner", "here"), ("Practitioner", "never")]),
            referring("e2", alex, &[("Practitioner", "gone"), ("Location", "never")]),
            referring("e3", sam, &[("Practitioner", "never")]),
        ])
        .await
        .unwrap();
    assert!(store.delete_resource("Practitioner", "gone").await.unwrap());
    let key = |t: &str, i: &str| (t.to_owned(), i.to_owned());
    let named = [key("Practitioner", "here"), key("Practitioner", "never"), key("Practitioner", "gone")];
    let mut among = store.dangling_references_to(alex, &named, 100).await.unwrap();
    among.sort();
    let referrer = |r: &str, t: &str, i: &str| ("Encounter".to_owned(), r.to_owned(), t.to_owned(), i.to_owned());
    assert_eq!(
        among,
        [referrer("e1", "Practitioner", "never"), referrer("e2", "Practitioner", "gone")],
        "only the named targets that are missing, only from alex's records"
    );
    let mut all = store.dangling_references(alex, 100).await.unwrap();
    all.retain(|(_, _, t, i)| named.contains(&key(t, i)));
    all.sort();
    assert_eq!(among, all);
    // More targets than one statement holds, and a limit.
    let many: Vec<(String, String)> =
        (0..600).map(|n| key("Practitioner", &format!("x{n}"))).chain(named.iter().cloned()).collect();
    assert_eq!(store.dangling_references_to(alex, &many, 100).await.unwrap().len(), 2);
    assert_eq!(store.dangling_references_to(alex, &many, 1).await.unwrap().len(), 1);
    assert!(store.dangling_references_to(alex, &[], 100).await.unwrap().is_empty());
}
