//! The authorization server's persistence, on SQLite and PostgreSQL.

use baton_store::testing::{on_postgres, on_sqlite};
use baton_store::{
    AccountId, BulkFile, BulkJob, ClientOrigin, ClientState, CodeRedemption, MemberGroup, MemberMatch, NewAccount,
    NewCode, OAuthClient, OAuthGrant, Store, SystemToken, Timestamp, TokenKind,
};
use baton_vocab::{BulkJobState, ConsentPolicy};

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $case() { super::on_sqlite(super::$case).await } )* }
        mod postgres { $( #[tokio::test] async fn $case() { super::on_postgres(super::$case).await } )* }
    };
}

on_both!(
    clients_are_upserted,
    suspending_a_client_ends_its_tokens_and_survives_a_restart,
    a_code_is_redeemed_exactly_once,
    tokens_and_grant_revocation,
    refresh_tokens_are_spent_once,
    assertion_jtis_are_remembered_until_they_expire,
    payer_to_payer_tokens_matches_and_bulk_jobs,
);

async fn setup(store: &Store) -> OAuthGrant {
    let account = store
        .insert_account(&NewAccount {
            username: "maria".into(),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
            ..Default::default()
        })
        .await
        .unwrap();
    store.put_oauth_client(&client("new-plan")).await.unwrap();
    let grant = OAuthGrant {
        id: "g1".into(),
        client_id: "new-plan".into(),
        account_id: account,
        patient_id: "p1".into(),
        scope: "launch/patient patient/*.rs".into(),
        include_sensitive: false,
        created_at: Timestamp::now().millis(),
        revoked_at: None,
    };
    store.insert_oauth_grant(&grant).await.unwrap();
    grant
}

fn client(id: &str) -> OAuthClient {
    OAuthClient {
        client_id: id.into(),
        name: "New Plan".into(),
        redirect_uris: "https://new.example/callback\nhttps://new.example/other".into(),
        secret_hash: Some("$argon2id$x".into()),
        jwks: None,
        jwks_url: None,
        scopes: "launch/patient patient/*.rs".into(),
        state: ClientState::Active,
        origin: ClientOrigin::Configuration,
        state_changed_by: None,
        identifiers: String::new(),
    }
}

async fn clients_are_upserted(store: Store) {
    store.put_oauth_client(&client("a")).await.unwrap();
    let mut changed = client("a");
    changed.name = "Renamed".into();
    changed.redirect_uris = "https://only.example/cb".into();
    store.put_oauth_client(&changed).await.unwrap();
    let read = store.oauth_client("a").await.unwrap().unwrap();
    assert_eq!(read.name, "Renamed");
    assert_eq!(read.redirect_uris().collect::<Vec<_>>(), ["https://only.example/cb"]);
    assert_eq!(store.oauth_client("b").await.unwrap(), None);
}

async fn a_code_is_redeemed_exactly_once(store: Store) {
    let grant = setup(&store).await;
    let now = Timestamp::now();
    store
        .insert_oauth_code(&NewCode {
            code_hash: "h1".into(),
            grant_id: grant.id.clone(),
            redirect_uri: "https://new.example/callback".into(),
            code_challenge: "challenge".into(),
            nonce: Some("n".into()),
            expires_at: now.plus(time::Duration::seconds(60)),
        })
        .await
        .unwrap();
    match store.redeem_oauth_code("h1", now).await.unwrap() {
        CodeRedemption::Redeemed(code, found) => {
            assert_eq!(code.code_challenge, "challenge");
            assert_eq!(code.nonce.as_deref(), Some("n"));
            assert_eq!(found, grant);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(store.redeem_oauth_code("h1", now).await.unwrap(), CodeRedemption::AlreadyUsed(grant));
    assert_eq!(store.redeem_oauth_code("nope", now).await.unwrap(), CodeRedemption::Unknown);
}

async fn tokens_and_grant_revocation(store: Store) {
    let grant = setup(&store).await;
    let now = Timestamp::now();
    let later = now.plus(time::Duration::hours(1));
    store.insert_oauth_token("a1", &grant.id, TokenKind::Access, "patient/*.rs", now, later).await.unwrap();
    store.insert_oauth_token("r1", &grant.id, TokenKind::Refresh, "patient/*.rs", now, later).await.unwrap();
    let (token, found) = store.oauth_token("a1").await.unwrap().unwrap();
    assert_eq!(token.kind, TokenKind::Access);
    assert_eq!(token.expires_at, later.millis());
    assert_eq!(token.revoked_at, None);
    assert_eq!(found.patient_id, "p1");
    assert!(!found.include_sensitive);

    store.revoke_oauth_token("a1", now).await.unwrap();
    assert!(store.oauth_token("a1").await.unwrap().unwrap().0.revoked_at.is_some());
    assert!(store.oauth_token("r1").await.unwrap().unwrap().0.revoked_at.is_none(), "one token only");

    store.revoke_oauth_grant(&grant.id, now).await.unwrap();
    let (refresh, grant_after) = store.oauth_token("r1").await.unwrap().unwrap();
    assert!(refresh.revoked_at.is_some(), "revoking the grant revokes its tokens");
    assert!(grant_after.revoked_at.is_some());
    assert_eq!(store.oauth_token("zz").await.unwrap(), None);
}

async fn refresh_tokens_are_spent_once(store: Store) {
    let grant = setup(&store).await;
    let now = Timestamp::now();
    let later = now.plus(time::Duration::days(90));
    store.insert_oauth_token("r1", &grant.id, TokenKind::Refresh, "s", now, later).await.unwrap();
    store.insert_oauth_token("a1", &grant.id, TokenKind::Access, "s", now, later).await.unwrap();
    assert!(store.spend_refresh_token("r1", now).await.unwrap());
    assert!(!store.spend_refresh_token("r1", now).await.unwrap(), "second exchange is a reuse");
    assert!(!store.spend_refresh_token("a1", now).await.unwrap(), "an access token is not a refresh token");
    store.insert_oauth_token("r2", &grant.id, TokenKind::Refresh, "s", now, later).await.unwrap();
    store.revoke_oauth_grant(&grant.id, now).await.unwrap();
    assert!(!store.spend_refresh_token("r2", now).await.unwrap(), "revoked tokens cannot be exchanged");
    let _ = AccountId(0);
}

async fn assertion_jtis_are_remembered_until_they_expire(store: Store) {
    let now = Timestamp::now();
    let soon = now.plus(time::Duration::minutes(5));
    assert!(store.remember_assertion_jti("c", "j1", soon, now).await.unwrap());
    assert!(!store.remember_assertion_jti("c", "j1", soon, now).await.unwrap(), "replay");
    assert!(store.remember_assertion_jti("other", "j1", soon, now).await.unwrap(), "per client");
    let after = soon.plus(time::Duration::seconds(1));
    assert!(store.remember_assertion_jti("c", "j1", after.plus(time::Duration::minutes(5)), after).await.unwrap());
}

async fn payer_to_payer_tokens_matches_and_bulk_jobs(store: Store) {
    let grant = setup(&store).await;
    let client = grant.client_id.clone();
    let account = grant.account_id;
    store.set_account_patient(account, "p1").await.unwrap();
    let now = Timestamp::now();
    let minute = |n: i64| now.plus(time::Duration::minutes(n));

    let token = SystemToken {
        token_hash: "h".into(),
        client_id: client.clone(),
        scope: "system/*.rs".into(),
        issued_at: now.millis(),
        expires_at: minute(5).millis(),
    };
    store.insert_system_token(&token).await.unwrap();
    assert_eq!(store.system_token("h", now).await.unwrap(), Some(token));
    assert_eq!(store.system_token("h", minute(6)).await.unwrap(), None, "expired");

    let umb = store.member_umb(account, "first").await.unwrap();
    assert_eq!(store.member_umb(account, "second").await.unwrap(), umb, "stable");
    assert_eq!(store.account_by_umb(&umb).await.unwrap(), Some(account));

    let matched = MemberMatch {
        id: "m1".into(),
        client_id: client.clone(),
        account_id: account,
        policy: ConsentPolicy::Regular,
        period_start: minute(-60).millis(),
        period_end: minute(60).millis(),
        consent: "{}".into(),
        matched_at: now.millis(),
    };
    store.insert_member_match(&matched).await.unwrap();
    assert_eq!(store.current_match(&client, "p1", now).await.unwrap(), Some(matched.clone()));
    assert_eq!(store.current_match(&client, "p1", minute(61)).await.unwrap(), None, "after the period");
    assert_eq!(store.current_match("other", "p1", now).await.unwrap(), None, "another client's");

    store.record_match_failure(&client, now, minute(-1440)).await.unwrap();
    store.record_match_failure(&client, now, minute(-1440)).await.unwrap();
    assert_eq!(store.match_failures_since(&client, minute(-1)).await.unwrap(), 2);
    assert_eq!(store.match_failures_since(&client, minute(1)).await.unwrap(), 0);

    let job = BulkJob {
        id: "j1".into(),
        client_id: client.clone(),
        kind: "bulk-member-match".into(),
        state: BulkJobState::Queued,
        request_url: "u".into(),
        request: "{}".into(),
        total: 2,
        done: 0,
        error: None,
        created_at: now.millis(),
        updated_at: now.millis(),
        completed_at: None,
        expires_at: minute(60).millis(),
    };
    store.insert_bulk_job(&job).await.unwrap();
    assert_eq!(store.active_bulk_jobs(&client).await.unwrap(), 1);
    assert!(store.claim_bulk_job("j1", now, minute(-1)).await.unwrap());
    assert!(!store.claim_bulk_job("j1", now, minute(-1)).await.unwrap(), "a live worker has it");
    assert!(store.claim_bulk_job("j1", minute(2), minute(1)).await.unwrap(), "its worker died");
    store.bulk_job_progress("j1", 1, minute(2)).await.unwrap();
    let part = |part: i64, body: &str| BulkFile {
        job_id: "j1".into(),
        name: "Group.ndjson".into(),
        part,
        resource_type: "Group".into(),
        count: 1,
        body: body.into(),
    };
    // Parts go in with the progress; a dead worker's parts past its progress are discarded.
    assert!(store.append_bulk_parts("j1", &[part(0, "a\n"), part(1, "b\n")], 1, minute(2)).await.unwrap());
    store.discard_bulk_parts_from("j1", 1).await.unwrap();
    let file = part(2, "c\n");
    let group = MemberGroup {
        id: "g1".into(),
        client_id: client.clone(),
        job_id: "j1".into(),
        code: "match".into(),
        body: "{}".into(),
        created_at: now.millis(),
    };
    assert!(store.complete_bulk_job("j1", &[file.clone()], &[group.clone()], minute(3)).await.unwrap());
    let done = store.bulk_job("j1").await.unwrap().unwrap();
    assert_eq!((done.state, done.done), (BulkJobState::Completed, 2));
    let parts = store.bulk_file_parts("j1", "Group.ndjson", None, 10).await.unwrap();
    assert_eq!(parts.iter().map(|p| p.body.as_str()).collect::<Vec<_>>(), ["a\n", "c\n"]);
    assert_eq!(store.bulk_file_parts("j1", "Group.ndjson", Some(0), 10).await.unwrap(), vec![file]);
    let whole = store.bulk_files("j1").await.unwrap();
    assert_eq!((whole.len(), whole[0].count, whole[0].name.as_str()), (1, 2, "Group.ndjson"));
    assert_eq!(store.member_group(&client, "g1").await.unwrap(), Some(group));
    assert_eq!(store.member_group("other", "g1").await.unwrap(), None);
    assert_eq!(store.active_bulk_jobs(&client).await.unwrap(), 0, "completed");
    assert_eq!(store.purge_expired_bulk_files(minute(30)).await.unwrap(), 0, "kept until it expires");
    assert_eq!(store.purge_expired_bulk_files(minute(61)).await.unwrap(), 2, "both parts");
    assert!(store.bulk_files("j1").await.unwrap().is_empty());
    assert!(store.member_group(&client, "g1").await.unwrap().is_some(), "the Group stays for exports");
    assert!(store.cancel_bulk_job("j1", minute(62)).await.unwrap());
    assert_eq!(store.bulk_job("j1").await.unwrap().unwrap().state, BulkJobState::Cancelled);
}

async fn suspending_a_client_ends_its_tokens_and_survives_a_restart(store: Store) {
    store.put_oauth_client(&client("payer")).await.unwrap();
    let now = Timestamp::now();
    let token = SystemToken {
        token_hash: "t".into(),
        client_id: "payer".into(),
        scope: "system/*.rs".into(),
        issued_at: now.millis(),
        expires_at: now.millis() + 300_000,
    };
    store.insert_system_token(&token).await.unwrap();
    assert!(store.set_oauth_client_state("payer", ClientState::Suspended, "admin", now).await.unwrap());
    assert_eq!(store.system_token("t", now).await.unwrap(), None, "a suspended client's token still works");
    // The configuration registers it again at the next start: it stays suspended.
    store.put_oauth_client(&client("payer")).await.unwrap();
    let read = store.oauth_client("payer").await.unwrap().unwrap();
    assert_eq!((read.state, read.state_changed_by.as_deref()), (ClientState::Suspended, Some("admin")));
    assert!(store.set_oauth_client_state("payer", ClientState::Active, "admin", now).await.unwrap());
    assert!(store.set_oauth_client_state("payer", ClientState::Removed, "admin", now).await.unwrap());
    // Removed is final, and its id is not given out again.
    assert!(!store.set_oauth_client_state("payer", ClientState::Active, "admin", now).await.unwrap());
    assert!(!store.set_oauth_client_state("nobody", ClientState::Suspended, "admin", now).await.unwrap());
    let mut again = client("payer");
    again.origin = ClientOrigin::Console;
    assert!(!store.insert_oauth_client(&again).await.unwrap());
    assert!(store.insert_oauth_client(&client("other")).await.unwrap());
    let listed: Vec<_> = store.oauth_clients().await.unwrap().into_iter().map(|c| (c.client_id, c.state)).collect();
    assert_eq!(listed, [("other".to_owned(), ClientState::Active), ("payer".to_owned(), ClientState::Removed)]);
}
