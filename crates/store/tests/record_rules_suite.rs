//! Rules every write path keeps, on SQLite and PostgreSQL: a Provenance of a sensitive record is
//! sensitive; a record belongs to every permission that brought it, and deleting one
//! permission's records deletes only what no other permission brought; what a transfer names
//! and has not written is noted with its id at the previous plan; a record is never written
//! over another member's; instance secrets are made once.

use baton_store::testing::{on_postgres, on_sqlite};
use baton_store::{
    AccountId, IndexedReference, MemberConsent, NewAccount, PayerLink, ResourceWrite, Store, Timestamp, TransferPage,
    TransferTarget,
};
use serde_json::json;

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $case() { super::on_sqlite(super::$case).await } )* }
        mod postgres { $( #[tokio::test] async fn $case() { super::on_postgres(super::$case).await } )* }
    };
}

on_both!(
    a_provenance_written_after_its_sensitive_target_is_sensitive,
    a_provenance_written_before_its_sensitive_target_becomes_sensitive,
    a_provenance_of_such_a_provenance_becomes_sensitive_too,
    received_provenance_in_a_transfer_page_follows_the_rule,
    a_record_brought_under_two_permissions_stays_until_both_delete_it,
    a_care_provider_other_members_records_name_stays_and_is_told_apart,
    this_plans_own_records_are_never_deleted_with_a_permission,
    targets_a_transfer_named_are_noted_with_their_source_ids,
    a_record_left_out_is_noted_apart_and_never_asked_for,
    an_instance_secret_is_made_once,
    another_members_record_is_never_overwritten,
    two_deletions_at_once_delete_each_record_once,
    renamed_records_are_renamed_wherever_they_are_named,
);

const SOURCE: &str = "https://old.example/fhir";

fn condition(id: &str, sensitive: bool) -> ResourceWrite {
    ResourceWrite {
        resource_type: "Condition".into(),
        id: id.into(),
        member_account: None,
        patient_id: Some("p-new".into()),
        source_system: Some(SOURCE.into()),
        source_id: Some(format!("src-{id}")),
        security: vec![],
        sensitive,
        date_start: None,
        date_end: None,
        identifiers: vec![],
        references: vec![],
        body: json!({"resourceType": "Condition", "id": id}),
    }
}

fn provenance(id: &str, targets: &[(&str, &str)]) -> ResourceWrite {
    ResourceWrite {
        resource_type: "Provenance".into(),
        id: id.into(),
        member_account: None,
        patient_id: Some("p-new".into()),
        source_system: Some(SOURCE.into()),
        source_id: Some(format!("src-{id}")),
        security: vec![],
        sensitive: false,
        date_start: None,
        date_end: None,
        identifiers: vec![],
        references: targets
            .iter()
            .map(|(t, i)| IndexedReference { path: "target".into(), target_type: (*t).into(), target_id: (*i).into() })
            .collect(),
        body: json!({"resourceType": "Provenance", "id": id}),
    }
}

async fn sensitive(store: &Store, resource_type: &str, id: &str) -> bool {
    store.read_resource(resource_type, id).await.unwrap().unwrap().sensitive
}

async fn a_provenance_written_after_its_sensitive_target_is_sensitive(store: Store) {
    store.put_resources(vec![condition("hiv", true), condition("flu", false)]).await.unwrap();
    let stored = store
        .put_resources(vec![
            provenance("p-hiv", &[("Condition", "flu"), ("Condition", "hiv")]),
            provenance("p-flu", &[("Condition", "flu")]),
        ])
        .await
        .unwrap();
    assert!(stored.iter().find(|r| r.id == "p-hiv").unwrap().sensitive, "as returned");
    assert!(sensitive(&store, "Provenance", "p-hiv").await, "as stored");
    assert!(!sensitive(&store, "Provenance", "p-flu").await);
}

async fn a_provenance_written_before_its_sensitive_target_becomes_sensitive(store: Store) {
    store.put_resources(vec![provenance("p-hiv", &[("Condition", "hiv")])]).await.unwrap();
    assert!(!sensitive(&store, "Provenance", "p-hiv").await, "nothing sensitive to point at yet");
    store.put_resources(vec![condition("hiv", true)]).await.unwrap();
    assert!(sensitive(&store, "Provenance", "p-hiv").await);
}

async fn a_provenance_of_such_a_provenance_becomes_sensitive_too(store: Store) {
    store
        .put_resources(vec![provenance("p1", &[("Condition", "hiv")]), provenance("p2", &[("Provenance", "p1")])])
        .await
        .unwrap();
    store.put_resources(vec![condition("hiv", true)]).await.unwrap();
    assert!(sensitive(&store, "Provenance", "p1").await);
    assert!(sensitive(&store, "Provenance", "p2").await, "it names a sensitive Provenance");
}

async fn received_provenance_in_a_transfer_page_follows_the_rule(store: Store) {
    let (_, link) = member_with_link(&store, "c-1").await;
    transfer(&store, &link, "t1").await;
    let page = |n: i64, resources: Vec<ResourceWrite>| TransferPage {
        transfer_id: "t1".into(),
        owner: "w".into(),
        lease_until: later(),
        resources,
        checkpoint: format!("{{\"page\":{n}}}"),
        progress: "{}".into(),
        pages_done: 1,
        permission: Some("c-1".into()),
        ..Default::default()
    };
    store.commit_transfer_page(page(1, vec![provenance("p-gad", &[("Condition", "gad")])])).await.unwrap();
    store.commit_transfer_page(page(2, vec![condition("gad", true)])).await.unwrap();
    assert!(sensitive(&store, "Provenance", "p-gad").await, "the page that brought the target marked it");
}

async fn member_with_link(store: &Store, consent: &str) -> (AccountId, PayerLink) {
    let member = match store.account_by_username("maria").await.unwrap() {
        Some(account) => account.id,
        None => store
            .insert_account(&NewAccount {
                username: "maria".into(),
                roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
                ..Default::default()
            })
            .await
            .unwrap(),
    };
    let now = Timestamp::now().millis();
    store
        .insert_consent(&MemberConsent {
            id: consent.into(),
            member_account: member,
            payer_id: "riverbend".into(),
            policy: baton_vocab::ConsentPolicy::Sensitive,
            period_start: now,
            period_end: now + 86_400_000,
            given_at: now,
            channel: baton_vocab::ConsentChannel::Web,
            resource: "{}".into(),
            withdrawn_at: None,
            created_at: now,
            records_deleted: None,
            records_kept: None,
            records_shared: None,
            replaced_by: None,
        })
        .await
        .unwrap();
    let link = PayerLink {
        id: format!("link-{consent}"),
        member_account: member,
        payer_id: "riverbend".into(),
        consent_id: Some(consent.into()),
        fhir_base: SOURCE.into(),
        patient_id: Some("p-old".into()),
        scope: "patient/*.rs".into(),
        include_sensitive: true,
        access_token: None,
        access_expires_at: None,
        refresh_token: None,
        id_token: None,
        state: baton_vocab::LinkState::Active,
        created_at: now,
        updated_at: now,
        source_sensitive: None,
        access: baton_vocab::LinkAccess::Member,
    };
    store.insert_link(&link).await.unwrap();
    (member, link)
}

fn later() -> Timestamp {
    Timestamp::now().plus(time::Duration::seconds(60))
}

async fn transfer(store: &Store, link: &PayerLink, id: &str) {
    store.enqueue_transfer(id, link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    let claimed = store.claim_transfer("w", later(), Timestamp::now()).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
}

/// A transfer under `consent` that brings `resources` (its member's) and finishes.
async fn bring(store: &Store, link: &PayerLink, transfer_id: &str, resources: Vec<ResourceWrite>) {
    transfer(store, link, transfer_id).await;
    let page = TransferPage {
        transfer_id: transfer_id.into(),
        owner: "w".into(),
        lease_until: later(),
        resources,
        checkpoint: "{}".into(),
        progress: "{}".into(),
        pages_done: 1,
        permission: link.consent_id.clone(),
        ..Default::default()
    };
    store.commit_transfer_page(page).await.unwrap();
    assert!(
        store
            .finish_transfer(transfer_id, "w", baton_vocab::TransferState::Completed, None, Timestamp::now())
            .await
            .unwrap()
    );
}

fn of(member: AccountId, mut write: ResourceWrite) -> ResourceWrite {
    write.member_account = Some(member);
    write
}

/// A directory entry (no member) from the previous plan.
fn practitioner(id: &str) -> ResourceWrite {
    ResourceWrite {
        resource_type: "Practitioner".into(),
        patient_id: None,
        body: json!({"resourceType": "Practitioner", "id": id}),
        ..condition(id, false)
    }
}

async fn a_record_brought_under_two_permissions_stays_until_both_delete_it(store: Store) {
    let (member, first) = member_with_link(&store, "c-first").await;
    let (_, second) = member_with_link(&store, "c-second").await;
    bring(&store, &first, "t1", vec![of(member, condition("a", false)), practitioner("dr")]).await;
    // The second permission brings the same records again, and one more.
    bring(
        &store,
        &second,
        "t2",
        vec![of(member, condition("a", false)), of(member, condition("b", false)), practitioner("dr")],
    )
    .await;

    let preview = store.permission_records(member, "c-second").await.unwrap();
    assert_eq!((preview.deleted, preview.kept), (1, 2), "only b is the second permission's alone");
    assert!(store.read_resource("Condition", "b").await.unwrap().is_some(), "a preview deletes nothing");

    let done = store.delete_permission_records(member, "c-second").await.unwrap();
    assert_eq!(done, preview, "it did what the preview said");
    assert_eq!(done.deleted_by_transfer, [("t2".to_owned(), 1)].into());
    assert!(store.read_resource("Condition", "b").await.unwrap().is_none());
    assert!(store.read_resource("Condition", "a").await.unwrap().is_some(), "the first permission brought it");
    assert!(store.read_resource("Practitioner", "dr").await.unwrap().is_some());
    assert_eq!(store.permission_records(member, "c-second").await.unwrap().deleted, 0, "taken off every record");

    let rest = store.delete_permission_records(member, "c-first").await.unwrap();
    assert_eq!((rest.deleted, rest.kept), (2, 0));
    assert!(store.read_resource("Condition", "a").await.unwrap().is_none());
    assert!(store.read_resource("Practitioner", "dr").await.unwrap().is_none());
}

async fn a_care_provider_other_members_records_name_stays_and_is_told_apart(store: Store) {
    let (maria, maria_link) = member_with_link(&store, "c-maria").await;
    let james = store
        .insert_account(&NewAccount {
            username: "james".into(),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
            ..Default::default()
        })
        .await
        .unwrap();
    let now = Timestamp::now().millis();
    let james_consent = MemberConsent {
        id: "c-james".into(),
        member_account: james,
        payer_id: "riverbend".into(),
        policy: baton_vocab::ConsentPolicy::Sensitive,
        period_start: now,
        period_end: now + 86_400_000,
        given_at: now,
        channel: baton_vocab::ConsentChannel::Web,
        resource: "{}".into(),
        withdrawn_at: None,
        created_at: now,
        records_deleted: None,
        records_kept: None,
        records_shared: None,
        replaced_by: None,
    };
    store.insert_consent(&james_consent).await.unwrap();
    let james_link = PayerLink {
        id: "link-james".into(),
        member_account: james,
        consent_id: Some("c-james".into()),
        ..maria_link.clone()
    };
    store.insert_link(&james_link).await.unwrap();
    bring(&store, &maria_link, "t1", vec![of(maria, condition("maria-a", false)), practitioner("dr")]).await;
    bring(&store, &james_link, "t2", vec![of(james, condition("james-a", false)), practitioner("dr")]).await;
    let done = store.delete_permission_records(maria, "c-maria").await.unwrap();
    assert_eq!((done.deleted, done.kept, done.shared), (1, 0, 1), "the practitioner is James's too, not Maria's twice");
    assert!(store.read_resource("Practitioner", "dr").await.unwrap().is_some());
    assert!(store.read_resource("Condition", "james-a").await.unwrap().is_some());
}

async fn this_plans_own_records_are_never_deleted_with_a_permission(store: Store) {
    let (member, link) = member_with_link(&store, "c-1").await;
    let own_patient = ResourceWrite {
        resource_type: "Patient".into(),
        id: "member-1".into(),
        member_account: Some(member),
        source_system: None,
        source_id: None,
        body: json!({"resourceType": "Patient", "id": "member-1"}),
        ..condition("x", false)
    };
    let custodian = ResourceWrite {
        source_system: None,
        source_id: None,
        member_account: Some(member),
        ..provenance("transfer-t1-abc", &[("Condition", "a")])
    };
    bring(&store, &link, "t1", vec![of(member, condition("a", false)), own_patient, custodian]).await;
    let done = store.delete_permission_records(member, "c-1").await.unwrap();
    assert_eq!(done.deleted, 1, "the received record (this plan's Provenance of it goes uncounted)");
    assert!(store.read_resource("Patient", "member-1").await.unwrap().is_some(), "the member's own Patient stays");
    assert!(store.read_resource("Provenance", "transfer-t1-abc").await.unwrap().is_none(), "its Provenance goes");
}

async fn targets_a_transfer_named_are_noted_with_their_source_ids(store: Store) {
    let (_, link) = member_with_link(&store, "c-1").await;
    transfer(&store, &link, "t1").await;
    let target = |id: &str| TransferTarget {
        target_type: "Practitioner".into(),
        target_id: format!("local-{id}"),
        source_id: id.into(),
        withheld: None,
    };
    let page = TransferPage {
        transfer_id: "t1".into(),
        owner: "w".into(),
        lease_until: later(),
        checkpoint: "{}".into(),
        progress: "{}".into(),
        targets: vec![target("dr1"), target("dr2"), target("dr1")],
        ..Default::default()
    };
    store.commit_transfer_page(page).await.unwrap();
    let asked =
        [("Practitioner".to_owned(), "local-dr2".to_owned()), ("Practitioner".to_owned(), "local-x".to_owned())];
    let found = store.transfer_target_sources("t1", &asked).await.unwrap();
    assert_eq!(found, [(asked[0].clone(), "dr2".to_owned())].into());
    assert!(store.transfer_target_sources("t2", &asked).await.unwrap().is_empty(), "per transfer");
    store.finish_transfer("t1", "w", baton_vocab::TransferState::Completed, None, Timestamp::now()).await.unwrap();
    assert!(store.transfer_target_sources("t1", &asked).await.unwrap().is_empty(), "gone once it completed");
}

async fn an_instance_secret_is_made_once(store: Store) {
    assert_eq!(store.instance_secret("record-ids", "first").await.unwrap(), "first");
    assert_eq!(store.instance_secret("record-ids", "second").await.unwrap(), "first");
    assert_eq!(store.instance_secret("other", "second").await.unwrap(), "second");
}

async fn a_record_left_out_is_noted_apart_and_never_asked_for(store: Store) {
    let (member, link) = member_with_link(&store, "c-1").await;
    transfer(&store, &link, "t1").await;
    let named = TransferTarget {
        target_type: "Condition".into(),
        target_id: "local-hiv".into(),
        source_id: "hiv-1".into(),
        withheld: None,
    };
    let page = |n: i64, targets: Vec<TransferTarget>| TransferPage {
        transfer_id: "t1".into(),
        owner: "w".into(),
        lease_until: later(),
        checkpoint: format!("{{\"page\":{n}}}"),
        progress: "{}".into(),
        targets,
        ..Default::default()
    };
    // Named on one page, found sensitive and left out on the next, named again on a third.
    store.commit_transfer_page(page(1, vec![named.clone()])).await.unwrap();
    let left_out = TransferTarget::withheld("Condition", "local-hiv", "label:hiv".into());
    store.commit_transfer_page(page(2, vec![left_out])).await.unwrap();
    store.commit_transfer_page(page(3, vec![named])).await.unwrap();
    let asked = [("Condition".to_owned(), "local-hiv".to_owned())];
    assert!(store.transfer_target_sources("t1", &asked).await.unwrap().is_empty(), "never fetched");
    assert_eq!(
        store.transfer_withheld("t1").await.unwrap(),
        [("Condition".to_owned(), "local-hiv".to_owned(), "label:hiv".to_owned())]
    );
    store.delete_permission_records(member, "c-1").await.unwrap();
    assert!(store.transfer_withheld("t1").await.unwrap().is_empty(), "gone with the permission's records");
}

async fn another_members_record_is_never_overwritten(store: Store) {
    let (maria, link) = member_with_link(&store, "c-maria").await;
    let james = store
        .insert_account(&NewAccount {
            username: "james".into(),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut theirs = of(james, condition("x", false));
    theirs.body = json!({"resourceType": "Condition", "id": "x", "code": {"text": "James's"}});
    store.put_resources(vec![theirs]).await.unwrap();
    // A previous plan sends Maria a record with the same id here.
    let mut planted = of(maria, condition("x", false));
    planted.body = json!({"resourceType": "Condition", "id": "x", "code": {"text": "Planted"}});
    bring(&store, &link, "t1", vec![planted.clone(), of(maria, condition("mine", false))]).await;
    let kept = store.read_resource("Condition", "x").await.unwrap().unwrap();
    assert_eq!(kept.member_account, Some(james.0));
    assert!(kept.body.contains("James's") && !kept.body.contains("Planted"));
    assert!(store.read_resource("Condition", "mine").await.unwrap().is_some(), "the rest of the page is kept");
    let rejected = store.transfer_rejections("t1").await.unwrap();
    assert!(
        rejected.iter().any(|r| r.source == "Condition/src-x" && r.reason.contains("another member")),
        "{rejected:?}"
    );
    let error = store.put_resources(vec![planted]).await.unwrap_err();
    assert!(error.to_string().contains("another member"), "{error}");
    assert!(store.read_resource("Condition", "x").await.unwrap().unwrap().body.contains("James's"));
}

async fn two_deletions_at_once_delete_each_record_once(store: Store) {
    let (member, link) = member_with_link(&store, "c-1").await;
    let records: Vec<ResourceWrite> = (0..30).map(|i| of(member, condition(&format!("r{i}"), false))).collect();
    bring(&store, &link, "t1", records).await;
    let (a, b) = tokio::join!(
        store.delete_permission_records(member, "c-1"),
        store.delete_permission_records(member, "c-1")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.deleted + b.deleted, 30, "each record counted once: {a:?} {b:?}");
    assert_eq!(store.permission_records(member, "c-1").await.unwrap().deleted, 0);
}

async fn renamed_records_are_renamed_wherever_they_are_named(store: Store) {
    let (member, link) = member_with_link(&store, "c-1").await;
    let mut referrer = of(member, provenance("p1", &[("Condition", "old-a")]));
    referrer.body = json!({"resourceType": "Provenance", "id": "p1", "target": [{"reference": "Condition/old-a"}],
        "agent": [{"who": {"reference": "Practitioner/dr", "display": "Condition/old-a"}}]});
    bring(&store, &link, "t1", vec![of(member, condition("old-a", false)), referrer]).await;
    transfer(&store, &link, "t2").await;
    let target = TransferTarget {
        target_type: "Condition".into(),
        target_id: "old-a".into(),
        source_id: "src-old-a".into(),
        withheld: None,
    };
    let page = TransferPage {
        transfer_id: "t2".into(),
        owner: "w".into(),
        lease_until: later(),
        checkpoint: "{}".into(),
        progress: "{}".into(),
        targets: vec![target],
        ..Default::default()
    };
    store.commit_transfer_page(page).await.unwrap();

    let rename = baton_store::Rename { resource_type: "Condition".into(), from: "old-a".into(), to: "new-a".into() };
    store.rename_records(&[rename.clone()]).await.unwrap();
    assert!(store.read_resource("Condition", "old-a").await.unwrap().is_none());
    let renamed = store.read_resource("Condition", "new-a").await.unwrap().expect("under its new id");
    assert!(renamed.body.contains("\"id\":\"new-a\""), "{}", renamed.body);
    let p1: serde_json::Value =
        serde_json::from_str(&store.read_resource("Provenance", "p1").await.unwrap().unwrap().body).unwrap();
    assert_eq!(p1["target"][0]["reference"], "Condition/new-a");
    assert_eq!(p1["agent"][0]["who"]["display"], "Condition/old-a", "only references change");
    let referrers = store
        .search_resources(&baton_store::ResourceQuery {
            resource_types: vec!["Provenance".into()],
            references_to: vec![("Condition".into(), "new-a".into())],
            reference_path: Some("target".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(referrers.resources.len(), 1, "the index follows");
    let asked = [("Condition".to_owned(), "new-a".to_owned())];
    assert_eq!(store.transfer_target_sources("t2", &asked).await.unwrap().len(), 1, "and what transfers noted");
    store.rename_records(&[rename]).await.unwrap();
    assert!(store.read_resource("Condition", "new-a").await.unwrap().is_some(), "twice is once");
}
