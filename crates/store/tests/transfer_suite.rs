//! Transfer jobs: claiming, leases, page commits, resumption; on SQLite and PostgreSQL.

use baton_store::testing::{on_postgres, on_sqlite};
use baton_store::{
    AccountId, CommitError, MemberConsent, NewAccount, PayerLink, ResourceQuery, ResourceWrite, Store, StoreError,
    Timestamp, TransferPage, TransferRequest,
};
use baton_vocab::{EventKind, TransferState};
use serde_json::json;

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $case() { super::on_sqlite(super::$case).await } )* }
        mod postgres { $( #[tokio::test] async fn $case() { super::on_postgres(super::$case).await } )* }
    };
}

on_both!(
    a_queued_transfer_is_claimed_once,
    an_expired_lease_is_taken_over_and_the_old_worker_cannot_commit,
    pages_commit_resources_checkpoint_and_audit_together,
    retry_and_cancel,
    a_page_in_flight_moves_the_checkpoint_only_after_the_one_before,
    pages_gathered_into_one_commit_leave_what_page_by_page_commits_would,
    withdrawing_consent_stops_transfers_and_forgets_tokens,
    a_link_is_due_a_pull_while_its_permission_holds_and_nothing_runs,
    a_request_stopped_mid_way_keeps_its_lines_until_it_is_readied_for_a_retry,
);

async fn member_with_link(store: &Store) -> (AccountId, PayerLink) {
    let member = store
        .insert_account(&NewAccount {
            username: "maria".into(),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
            ..Default::default()
        })
        .await
        .unwrap();
    let now = Timestamp::now().millis();
    let consent = MemberConsent {
        id: "consent-1".into(),
        member_account: member,
        payer_id: "riverbend".into(),
        policy: baton_vocab::ConsentPolicy::Regular,
        period_start: now - 1000,
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
    store.insert_consent(&consent).await.unwrap();
    let link = PayerLink {
        id: "link-1".into(),
        member_account: member,
        payer_id: "riverbend".into(),
        consent_id: Some("consent-1".into()),
        fhir_base: "https://old.example/fhir".into(),
        patient_id: Some("p-old".into()),
        scope: "patient/*.rs".into(),
        include_sensitive: false,
        access_token: Some("sealed-access".into()),
        access_expires_at: Some(now + 3_600_000),
        refresh_token: Some("sealed-refresh".into()),
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

fn later(seconds: i64) -> Timestamp {
    Timestamp::now().plus(time::Duration::seconds(seconds))
}

async fn a_queued_transfer_is_claimed_once(store: Store) {
    let (_, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    let now = Timestamp::now();
    let claimed = store.claim_transfer("worker-a", later(30), now).await.unwrap().expect("claimed");
    assert_eq!(claimed.id, "t1");
    assert_eq!(claimed.state, baton_vocab::TransferState::Running);
    assert_eq!(claimed.lease_owner.as_deref(), Some("worker-a"));
    assert_eq!(claimed.attempts, 1);
    assert!(store.claim_transfer("worker-b", later(30), now).await.unwrap().is_none(), "leased: not claimable");
    assert!(store.renew_lease("t1", "worker-a", later(60)).await.unwrap());
    assert!(!store.renew_lease("t1", "worker-b", later(60)).await.unwrap());
}

async fn an_expired_lease_is_taken_over_and_the_old_worker_cannot_commit(store: Store) {
    let (_, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    let now = Timestamp::now();
    store.claim_transfer("dead-worker", now.plus(time::Duration::seconds(-1)), now).await.unwrap().unwrap();
    // The lease already ran out: another worker takes the job over.
    let taken = store.claim_transfer("worker-b", later(30), Timestamp::now()).await.unwrap().expect("taken over");
    assert_eq!(taken.lease_owner.as_deref(), Some("worker-b"));
    assert_eq!(taken.attempts, 2);
    let page = TransferPage {
        transfer_id: "t1".into(),
        owner: "dead-worker".into(),
        lease_until: later(30),
        checkpoint: "{\"page\":9}".into(),
        progress: "{}".into(),
        pages_done: 1,
        ..Default::default()
    };
    assert!(matches!(store.commit_transfer_page(page).await, Err(CommitError::LeaseLost)));
    assert_eq!(store.transfer("t1").await.unwrap().unwrap().pages_done, 0, "nothing of the stale page counted");
    assert!(
        !store
            .finish_transfer("t1", "dead-worker", baton_vocab::TransferState::Completed, None, Timestamp::now())
            .await
            .unwrap()
    );
}

fn received(id: &str) -> ResourceWrite {
    ResourceWrite {
        resource_type: "Condition".into(),
        id: id.into(),
        member_account: None,
        patient_id: Some("p-new".into()),
        source_system: Some("https://old.example/fhir".into()),
        source_id: Some(format!("src-{id}")),
        security: vec![],
        sensitive: false,
        date_start: None,
        date_end: None,
        identifiers: vec![],
        references: vec![],
        body: json!({"resourceType": "Condition", "id": id}),
    }
}

async fn pages_commit_resources_checkpoint_and_audit_together(store: Store) {
    let (member, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    store.claim_transfer("w", later(30), Timestamp::now()).await.unwrap().unwrap();
    let page = TransferPage {
        transfer_id: "t1".into(),
        owner: "w".into(),
        lease_until: later(30),
        resources: vec![received("c1"), received("c2")],
        checkpoint: "{\"next\":\"page-2\"}".into(),
        progress: "{\"Condition\":2}".into(),
        pages_done: 1,
        rejected: vec![("Condition/bad".into(), "missing id".into())],
        requests: vec![TransferRequest {
            at: Timestamp::now().millis(),
            method: "GET".into(),
            url: "https://old.example/fhir/Condition?patient=p-old".into(),
            status: Some(200),
            duration_ms: 12,
            bytes: 2048,
            error: None,
        }],
        events: vec![(baton_vocab::EventKind::Warning, "Condition 1".into())],
        permission: link.consent_id.clone(),
        targets: vec![],
    };
    let stored = store.commit_transfer_page(page).await.unwrap();
    assert_eq!(stored.len(), 2);
    let transfer = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!((transfer.resources_stored, transfer.pages_done), (2, 1));
    assert_eq!(transfer.checkpoint, "{\"next\":\"page-2\"}");
    assert_eq!(store.transfer_requests("t1").await.unwrap()[0].status, Some(200));
    assert_eq!(store.transfer_rejections("t1").await.unwrap()[0].reason, "missing id");
    assert!(store.transfer_events("t1").await.unwrap().iter().any(|e| e.kind == baton_vocab::EventKind::Warning));
    let of_transfer = store.resources_of_transfer("t1", 0, 10).await.unwrap();
    assert_eq!(of_transfer.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
    assert!(of_transfer[0].seq < of_transfer[1].seq);
    let counts = store.transfer_type_counts("t1", "https://old.example/fhir").await.unwrap();
    assert_eq!(counts, [("Condition".to_owned(), 2)]);
    assert!(store.transfer_type_counts("t1", "https://elsewhere.example/fhir").await.unwrap().is_empty());
    assert!(
        store.finish_transfer("t1", "w", baton_vocab::TransferState::Completed, None, Timestamp::now()).await.unwrap()
    );
    let done = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!(done.state, baton_vocab::TransferState::Completed);
    assert!(done.finished_at.is_some() && done.lease_owner.is_none());
    let query = ResourceQuery { patient_id: Some("p-new".into()), limit: 10, ..Default::default() };
    assert_eq!(store.count_resources(&query).await.unwrap(), 2);
    let _ = member;
}

async fn a_page_in_flight_moves_the_checkpoint_only_after_the_one_before(store: Store) {
    let (_, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    store.claim_transfer("w", later(30), Timestamp::now()).await.unwrap().unwrap();
    let page = |n: usize, ids: &[&str]| TransferPage {
        transfer_id: "t1".into(),
        owner: "w".into(),
        lease_until: later(30),
        resources: ids.iter().map(|id| received(id)).collect(),
        checkpoint: format!("{{\"page\":{n}}}"),
        progress: "{}".into(),
        pages_done: 1,
        ..Default::default()
    };
    // Page 2 is on its way before page 1 has committed.
    let (first_committed, first) = tokio::sync::oneshot::channel::<bool>();
    let second = tokio::spawn({
        let store = store.clone();
        let page = page(2, &["c3", "c4"]).prepare().unwrap();
        async move { store.commit_prepared_page_after(page, async { first.await.unwrap_or(false) }).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(!second.is_finished(), "it waits for the page before it");
    assert_eq!(store.transfer("t1").await.unwrap().unwrap().pages_done, 0);
    assert_eq!(store.commit_transfer_page(page(1, &["c1", "c2"])).await.unwrap().len(), 2);
    first_committed.send(true).unwrap();
    assert_eq!(second.await.unwrap().unwrap().len(), 2);
    let transfer = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!((transfer.checkpoint.as_str(), transfer.pages_done, transfer.resources_stored), ("{\"page\":2}", 2, 4));

    // A page whose predecessor did not commit is not committed either.
    let outcome =
        store.commit_prepared_page_after(page(3, &["c5"]).prepare().unwrap(), std::future::ready(false)).await;
    assert!(matches!(outcome, Err(CommitError::PreviousPageFailed)), "{outcome:?}");
    let transfer = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!((transfer.checkpoint.as_str(), transfer.pages_done), ("{\"page\":2}", 2));
    let query = ResourceQuery { patient_id: Some("p-new".into()), limit: 10, ..Default::default() };
    assert_eq!(store.count_resources(&query).await.unwrap(), 4, "c5 was rolled back");
}

async fn pages_gathered_into_one_commit_leave_what_page_by_page_commits_would(store: Store) {
    let (_, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    store.claim_transfer("w", later(30), Timestamp::now()).await.unwrap().unwrap();
    let request = |url: &str| TransferRequest {
        at: Timestamp::now().millis(),
        method: "GET".into(),
        url: url.into(),
        status: Some(200),
        duration_ms: 5,
        bytes: 100,
        error: None,
    };
    let page = |n: usize, resources: Vec<ResourceWrite>| TransferPage {
        transfer_id: "t1".into(),
        owner: "w".into(),
        lease_until: later(30),
        resources,
        checkpoint: format!("{{\"page\":{n}}}"),
        progress: format!("{{\"pages\":{n}}}"),
        pages_done: 1,
        rejected: vec![(format!("entry {n}"), "missing id".into())],
        requests: vec![request(&format!("https://old.example/fhir/page-{n}"))],
        events: vec![(baton_vocab::EventKind::Fetched, format!("page {n}"))],
        permission: link.consent_id.clone(),
        targets: vec![],
    };
    let mut newer = received("c2");
    newer.body = json!({"resourceType": "Condition", "id": "c2", "note": [{"text": "updated"}]});
    let mut group = page(1, vec![received("c1"), received("c2")]).prepare().unwrap();
    group.absorb(page(2, vec![newer, received("c3")])).unwrap();
    assert_eq!(group.resources(), 3, "c2 once, as the later page has it");

    let mut other = page(3, vec![received("c9")]);
    other.transfer_id = "t2".into();
    assert!(matches!(group.absorb(other), Err(StoreError::Invalid(_))), "pages of another transfer stay apart");
    assert_eq!(group.resources(), 3);

    let stored = store.commit_prepared_page(group).await.unwrap();
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["c1", "c2", "c3"]);
    let transfer = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!(
        (transfer.checkpoint.as_str(), transfer.progress.as_str(), transfer.pages_done, transfer.resources_stored),
        ("{\"page\":2}", "{\"pages\":2}", 2, 4),
        "the last page's checkpoint and progress; both pages counted as received"
    );
    let c2 = store.read_resource("Condition", "c2").await.unwrap().unwrap();
    assert!(c2.body.contains("updated"), "{}", c2.body);
    let urls: Vec<String> = store.transfer_requests("t1").await.unwrap().into_iter().map(|r| r.url).collect();
    assert_eq!(urls, ["https://old.example/fhir/page-1", "https://old.example/fhir/page-2"]);
    let rejected: Vec<String> = store.transfer_rejections("t1").await.unwrap().into_iter().map(|r| r.source).collect();
    assert_eq!(rejected, ["entry 1", "entry 2"]);
    let events: Vec<String> = store.transfer_events("t1").await.unwrap().into_iter().map(|e| e.detail).collect();
    assert!(events.contains(&"page 1".to_owned()) && events.contains(&"page 2".to_owned()), "{events:?}");
}

async fn retry_and_cancel(store: Store) {
    let (_, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    store.claim_transfer("w", later(30), Timestamp::now()).await.unwrap().unwrap();
    store
        .finish_transfer(
            "t1",
            "w",
            baton_vocab::TransferState::Failed,
            Some("the previous plan kept failing"),
            Timestamp::now(),
        )
        .await
        .unwrap();
    assert!(!store.cancel_transfer("t1", "staff sam", Timestamp::now()).await.unwrap(), "finished: nothing to cancel");
    assert!(store.retry_transfer("t1", "staff sam", Timestamp::now()).await.unwrap());
    let queued = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!((queued.state, queued.error.as_deref()), (TransferState::Queued, None));
    assert!(store.cancel_transfer("t1", "staff sam", Timestamp::now()).await.unwrap());
    assert!(store.claim_transfer("w", later(30), Timestamp::now()).await.unwrap().is_none());
    let events: Vec<EventKind> = store.transfer_events("t1").await.unwrap().into_iter().map(|e| e.kind).collect();
    for kind in [EventKind::Queued, EventKind::Claimed, EventKind::Failed, EventKind::Retry, EventKind::Cancelled] {
        assert!(events.contains(&kind), "{kind} in {events:?}");
    }
}

async fn withdrawing_consent_stops_transfers_and_forgets_tokens(store: Store) {
    let (_, link) = member_with_link(&store).await;
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();
    store.claim_transfer("w", later(30), Timestamp::now()).await.unwrap().unwrap();
    assert!(store.withdraw_consent("consent-1", Timestamp::now()).await.unwrap());
    let transfer = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!(transfer.state, baton_vocab::TransferState::Cancelled);
    let link = store.link("link-1").await.unwrap().unwrap();
    assert_eq!(link.state, baton_vocab::LinkState::Revoked);
    assert!(link.access_token.is_none() && link.refresh_token.is_none(), "tokens are forgotten");
    assert!(!store.consent("consent-1").await.unwrap().unwrap().in_force(Timestamp::now()));
    let page =
        TransferPage { transfer_id: "t1".into(), owner: "w".into(), lease_until: later(30), ..Default::default() };
    assert!(
        matches!(store.commit_transfer_page(page).await, Err(CommitError::LeaseLost)),
        "the worker stops at its next page"
    );
    // Staff lists say so, and list only those when asked.
    let filter = |withdrawn| baton_store::TransferFilter { withdrawn, limit: 10, ..Default::default() };
    let rows = store.list_transfer_rows(&filter(None)).await.unwrap();
    assert!(rows.len() == 1 && rows[0].withdrawn, "{rows:?}");
    assert_eq!(store.list_transfer_rows(&filter(Some(true))).await.unwrap().len(), 1);
    assert!(store.list_transfer_rows(&filter(Some(false))).await.unwrap().is_empty());
}

async fn a_link_is_due_a_pull_while_its_permission_holds_and_nothing_runs(store: Store) {
    // The suite's permission lasts a day from now.
    let (_, link) = member_with_link(&store).await;
    let now = Timestamp::now();
    let due = |at: Timestamp, every: time::Duration| {
        let store = store.clone();
        async move { store.links_due_for_pull(at.plus(-every), at, 10).await.unwrap() }
    };
    let (hour, month) = (time::Duration::hours(1), time::Duration::days(30));
    let noon = now.plus(time::Duration::hours(12));
    store.enqueue_transfer("t1", &link, baton_vocab::TransferKind::Initial, None, now).await.unwrap();
    let t1 = store.claim_transfer("w", later(30), now).await.unwrap().unwrap();
    assert!(due(noon, hour).await.is_empty(), "running");
    store.finish_transfer("t1", "w", baton_vocab::TransferState::Completed, None, now).await.unwrap();
    assert_eq!(due(noon, hour).await, [("link-1".to_owned(), t1.started_at.unwrap())], "since it started");
    assert!(due(noon, month).await.is_empty(), "too soon after the last");
    assert!(due(now.plus(time::Duration::days(2)), hour).await.is_empty(), "the permission has ended");
    // Queued again: not due while it waits; done, due again.
    store.enqueue_transfer("t2", &link, baton_vocab::TransferKind::Incremental, None, now).await.unwrap();
    assert!(due(noon, hour).await.is_empty(), "queued");
    store.claim_transfer("w", later(30), now).await.unwrap().unwrap();
    store.finish_transfer("t2", "w", baton_vocab::TransferState::Completed, None, now).await.unwrap();
    assert_eq!(due(noon, hour).await.len(), 1);
    // Withdrawn: never again.
    store.withdraw_consent("consent-1", now).await.unwrap();
    assert!(due(noon, hour).await.is_empty(), "withdrawn");
}

async fn a_request_stopped_mid_way_keeps_its_lines_until_it_is_readied_for_a_retry(store: Store) {
    use baton_store::{P2pRequest, StagedLine};
    use baton_vocab::RequestState;
    let now = Timestamp::now();
    let request = |id: &str| P2pRequest {
        id: id.into(),
        payer_id: "oldplan".into(),
        state: RequestState::Queued,
        checkpoint: "{}".into(),
        members: 0,
        matched: 0,
        not_matched: 0,
        constrained: 0,
        lines: 0,
        rejected: 0,
        since: None,
        progress_note: None,
        error: None,
        attempts: 0,
        lease_owner: None,
        lease_until: None,
        run_after: now.millis(),
        created_at: now.millis(),
        updated_at: now.millis(),
        finished_at: None,
    };
    let reading = r#"{"step":{"phase":"download","files":[],"requires_token":true,"file":0,"line":2}}"#;
    let single = r#"{"step":{"phase":"deliver","routed":false},"single":true}"#;
    for (id, checkpoint) in [("r-bulk", reading), ("r-single", single)] {
        store.create_request(&request(id), &[]).await.unwrap();
        store.claim_request("w", later(30), now).await.unwrap().unwrap();
        let line = StagedLine {
            coverage_id: "c1".into(),
            resource_type: "Condition".into(),
            source_id: "x".into(),
            body: "{}".into(),
        };
        assert!(store.advance_request(id, "w", RequestState::Downloading, checkpoint, None, now).await.unwrap());
        assert!(store.stage_lines(id, "w", &[line], 2, 1, checkpoint, now).await.unwrap());
        assert!(store.finish_request(id, "w", RequestState::Failed, Some("the file broke off"), now).await.unwrap());
        assert_eq!(store.staged_lines(id, "c1", 0, 10).await.unwrap().len(), 1, "kept: a retry resumes there");
    }
    let stopped = store.stopped_requests_mid_way(10).await.unwrap();
    assert_eq!(stopped.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r-bulk"], "one matched one by one pulls");
    assert!(
        !store.ready_stopped_request("r-bulk", "{}", r#"{"step":{"phase":"match"}}"#).await.unwrap(),
        "not its place"
    );
    assert!(store.ready_stopped_request("r-bulk", reading, r#"{"step":{"phase":"match"}}"#).await.unwrap());
    let readied = store.request("r-bulk").await.unwrap().unwrap();
    assert_eq!((readied.state, readied.lines, readied.rejected), (RequestState::Failed, 0, 0));
    assert!(store.staged_lines("r-bulk", "c1", 0, 10).await.unwrap().is_empty(), "let go");
    assert!(store.stopped_requests_mid_way(10).await.unwrap().is_empty());
    assert!(store.retry_request("r-bulk", now).await.unwrap());
    assert!(!store.ready_stopped_request("r-bulk", r#"{"step":{"phase":"match"}}"#, "{}").await.unwrap(), "running");
}
