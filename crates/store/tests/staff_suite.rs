//! The staff console's tables on both backends: audit log, member search, API tokens.

use baton_store::testing::{on_postgres, on_sqlite};
use baton_store::{
    AccountId, ApiToken, AuditQuery, BrandSource, MemberQuery, NewAccount, NewAuditEvent, PayerEnabledOverride,
    PayerEntry, PinnedEndpoints, Store, Timestamp,
};

macro_rules! staff_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $case() { super::on_sqlite(super::$case).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $case() { super::on_postgres(super::$case).await } )*
        }
    };
}

staff_suite!(
    audit_is_searched_newest_first,
    members_are_found_by_name_id_and_birth_date,
    api_tokens_are_revocable,
    brands_entries_keep_their_registration_across_refreshes,
    pinned_endpoints_survive_a_brands_refresh,
    entries_a_brands_file_drops_are_withdrawn_and_come_back_when_listed_again,
    configured_payers_are_switched_off_and_on,
    every_directory_change_moves_its_version
);

async fn account(store: &Store, username: &str, name: &str, member_id: Option<&str>, birth: &str) -> AccountId {
    store
        .insert_account(&NewAccount {
            username: username.into(),
            display_name: name.into(),
            roles: if member_id.is_some() {
                baton_vocab::Roles::of([baton_vocab::Role::Member])
            } else {
                baton_vocab::Roles::of([baton_vocab::Role::Staff])
            },
            member_id: member_id.map(str::to_owned),
            birth_date: Some(baton_vocab::day::parse(birth).expect("a date")),
            coverage_start: Some(baton_vocab::day::parse("2026-01-01").expect("a date")),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn audit_is_searched_newest_first(store: Store) {
    let sam = account(&store, "sam", "Sam Rivera", None, "1970-01-01").await;
    let rosa = account(&store, "np-1", "Rosa Diaz", Some("NP-1"), "1980-04-23").await;
    let event = |at: i64, action: &str, member: Option<AccountId>| NewAuditEvent {
        at: Timestamp::from_millis(at),
        actor_account: Some(sam),
        actor: "sam (Sam Rivera)".into(),
        action: action.into(),
        member_account: member,
        subject: "subject".into(),
        detail: String::new(),
    };
    for e in [
        event(1_000, "member.view", Some(rosa)),
        event(2_000, "transfer.retry", Some(rosa)),
        event(3_000, "transfer.cancel", None),
        event(4_000, "audit.search", None),
    ] {
        store.record_audit(&e).await.unwrap();
    }
    let all = store.search_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.at).collect::<Vec<_>>(), vec![4_000, 3_000, 2_000, 1_000]);
    let of_rosa = store.search_audit(&AuditQuery { member_account: Some(rosa), ..Default::default() }).await.unwrap();
    assert_eq!(of_rosa.len(), 2);
    let transfers =
        store.search_audit(&AuditQuery { action: Some("transfer.".into()), ..Default::default() }).await.unwrap();
    assert_eq!(transfers.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["transfer.cancel", "transfer.retry"]);
    let window = AuditQuery {
        from: Some(Timestamp::from_millis(2_000)),
        before: Some(Timestamp::from_millis(4_000)),
        actor: Some("RIVERA".into()),
        limit: 1,
        offset: 1,
        ..Default::default()
    };
    assert_eq!(store.search_audit(&window).await.unwrap().iter().map(|e| e.at).collect::<Vec<_>>(), vec![2_000]);
    let nobody = AuditQuery { actor: Some("100%_".into()), ..Default::default() };
    assert!(store.search_audit(&nobody).await.unwrap().is_empty(), "LIKE wildcards are taken literally");
}

async fn members_are_found_by_name_id_and_birth_date(store: Store) {
    account(&store, "sam", "Sam Rivera", None, "1970-01-01").await;
    let rosa = account(&store, "np-1", "Rosa Diaz", Some("NP-1"), "1980-04-23").await;
    let rosalind = account(&store, "np-2", "Rosalind Park", Some("NP-2"), "1990-01-01").await;
    let find = |text: Option<&str>, birth: Option<&str>| MemberQuery {
        text: text.map(str::to_owned),
        birth_date: birth.map(|b| baton_vocab::day::parse(b).expect("a date")),
        limit: 50,
        offset: 0,
    };
    let ids = |found: Vec<baton_store::Account>| found.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(store.search_members(&find(Some("rosa"), None)).await.unwrap()), vec![rosa, rosalind]);
    assert_eq!(ids(store.search_members(&find(Some("np-2"), None)).await.unwrap()), vec![rosalind]);
    assert_eq!(ids(store.search_members(&find(Some("ROSA"), Some("1980-04-23"))).await.unwrap()), vec![rosa]);
    assert_eq!(ids(store.search_members(&find(None, None)).await.unwrap()).len(), 2, "staff are not members");
    assert!(store.search_members(&find(Some("sam"), None)).await.unwrap().is_empty());
    let late = store.members_without_consent(baton_vocab::day::parse("2026-01-01").expect("a date"), 10).await.unwrap();
    assert_eq!(late.len(), 2);
    assert!(
        store
            .members_without_consent(baton_vocab::day::parse("2025-12-31").expect("a date"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn api_tokens_are_revocable(store: Store) {
    let sam = account(&store, "sam", "Sam Rivera", None, "1970-01-01").await;
    let token = ApiToken {
        id: "t1".into(),
        name: "claims warehouse".into(),
        token_hash: "hash-1".into(),
        include_sensitive: false,
        created_by: sam.0,
        created_at: 1,
        last_used_at: None,
        revoked_at: None,
        revoked_by: None,
    };
    store.insert_api_token(&token).await.unwrap();
    let used = store.use_api_token("hash-1", Timestamp::from_millis(50)).await.unwrap().expect("live");
    assert_eq!(used.name, "claims warehouse");
    assert_eq!(store.api_tokens().await.unwrap()[0].last_used_at, Some(50));
    assert!(store.use_api_token("other", Timestamp::from_millis(60)).await.unwrap().is_none());
    assert!(store.revoke_api_token("t1", sam, Timestamp::from_millis(70)).await.unwrap());
    assert!(!store.revoke_api_token("t1", sam, Timestamp::from_millis(80)).await.unwrap(), "once");
    assert!(store.use_api_token("hash-1", Timestamp::from_millis(90)).await.unwrap().is_none(), "revoked");
}

async fn brands_entries_keep_their_registration_across_refreshes(store: Store) {
    let entry = |name: &str, at: i64| PayerEntry {
        id: "brand-hp".into(),
        name: name.into(),
        aliases: String::new(),
        states: "WI".into(),
        logo_url: None,
        fhir_base: "https://fhir.hp.example/r4".into(),
        source_url: "https://hp.example/brands.json".into(),
        client_id: None,
        credential: None,
        enabled: false,
        updated_at: at,
        authorize_url: None,
        token_url: None,
        scopes: None,
        withdrawn_at: None,
    };
    assert_eq!(
        store
            .apply_payer_entries(HP_BRANDS, &[entry("Example Plan", 1)], Timestamp::from_millis(1))
            .await
            .unwrap()
            .added,
        1
    );
    assert!(
        store
            .set_payer_registration("brand-hp", Some("baton"), Some("shared"), true, Timestamp::from_millis(2))
            .await
            .unwrap()
    );
    assert!(!store.set_payer_registration("nope", None, None, false, Timestamp::from_millis(2)).await.unwrap());
    assert_eq!(
        store
            .apply_payer_entries(HP_BRANDS, &[entry("Example Plan (renamed)", 3)], Timestamp::from_millis(1))
            .await
            .unwrap()
            .added,
        0,
        "known by its FHIR base"
    );
    let stored = store.payer_entries().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "Example Plan (renamed)");
    assert_eq!(
        (stored[0].client_id.as_deref(), stored[0].credential.as_deref(), stored[0].enabled),
        (Some("baton"), Some("shared"), true)
    );
    let source = BrandSource {
        url: "https://hp.example/brands.json".into(),
        etag: Some("W/\"1\"".into()),
        checked_at: 5,
        changed_at: 5,
        status: "1 plans, 1 new".into(),
        entries: 1,
    };
    store.save_brand_source(&source).await.unwrap();
    store
        .save_brand_source(&BrandSource { checked_at: 9, status: "not modified".into(), ..source.clone() })
        .await
        .unwrap();
    let saved = store.brand_source(&source.url).await.unwrap().unwrap();
    assert_eq!((saved.checked_at, saved.changed_at, saved.status.as_str()), (9, 5, "not modified"));
    assert_eq!(store.brand_sources().await.unwrap().len(), 1);
}

const HP_BRANDS: &str = "https://hp.example/brands.json";

async fn entries_a_brands_file_drops_are_withdrawn_and_come_back_when_listed_again(store: Store) {
    let at = |base: &str, id: &str| PayerEntry { id: id.into(), fhir_base: base.into(), ..brands_entry(id, 1) };
    let (hp, north) = (at("https://fhir.hp.example/r4", "brand-hp"), at("https://north.example/fhir", "brand-north"));
    let applied =
        store.apply_payer_entries(HP_BRANDS, &[hp.clone(), north.clone()], Timestamp::from_millis(1)).await.unwrap();
    assert_eq!((applied.added, applied.withdrawn), (2, 0));
    store
        .set_payer_registration("brand-north", Some("me"), Some("cred"), true, Timestamp::from_millis(2))
        .await
        .unwrap();
    // Another file's entry is not this file's to withdraw.
    let other =
        PayerEntry { source_url: "https://other.example/brands.json".into(), ..at("https://o.example/fhir", "o") };
    store
        .apply_payer_entries(&other.source_url, std::slice::from_ref(&other), Timestamp::from_millis(2))
        .await
        .unwrap();

    // The file now lists only Example Plan: North is withdrawn, its registration kept.
    let applied =
        store.apply_payer_entries(HP_BRANDS, std::slice::from_ref(&hp), Timestamp::from_millis(5)).await.unwrap();
    assert_eq!((applied.added, applied.withdrawn), (0, 1));
    let stored = store.payer_entries().await.unwrap();
    let find = |id: &str| stored.iter().find(|e| e.id == id).cloned().unwrap();
    assert_eq!(find("brand-north").withdrawn_at, Some(5));
    assert_eq!(find("brand-north").client_id.as_deref(), Some("me"), "registration kept");
    assert_eq!(find("brand-hp").withdrawn_at, None);
    assert_eq!(find("o").withdrawn_at, None, "another file's entry is untouched");
    // Loaded again unchanged: nothing more is withdrawn.
    let applied =
        store.apply_payer_entries(HP_BRANDS, std::slice::from_ref(&hp), Timestamp::from_millis(6)).await.unwrap();
    assert_eq!((applied.added, applied.withdrawn), (0, 0));
    assert_eq!(
        store.payer_entries().await.unwrap().iter().find(|e| e.id == "brand-north").unwrap().withdrawn_at,
        Some(5)
    );

    // Listed again: back, with the registration as it was.
    let applied = store.apply_payer_entries(HP_BRANDS, &[hp, north], Timestamp::from_millis(7)).await.unwrap();
    assert_eq!((applied.added, applied.withdrawn), (0, 0));
    let north = store.payer_entries().await.unwrap().into_iter().find(|e| e.id == "brand-north").unwrap();
    assert_eq!((north.withdrawn_at, north.client_id.as_deref(), north.enabled), (None, Some("me"), true));
}

fn brands_entry(name: &str, at: i64) -> PayerEntry {
    PayerEntry {
        id: "brand-hp".into(),
        name: name.into(),
        aliases: String::new(),
        states: "WI".into(),
        logo_url: None,
        fhir_base: "https://fhir.hp.example/r4".into(),
        source_url: "https://hp.example/brands.json".into(),
        client_id: None,
        credential: None,
        enabled: false,
        updated_at: at,
        authorize_url: None,
        token_url: None,
        scopes: None,
        withdrawn_at: None,
    }
}

async fn pinned_endpoints_survive_a_brands_refresh(store: Store) {
    store.apply_payer_entries(HP_BRANDS, &[brands_entry("Example Plan", 1)], Timestamp::from_millis(1)).await.unwrap();
    let pinned = PinnedEndpoints {
        authorize_url: Some("https://auth.hp.example/authorize".into()),
        token_url: Some("https://auth.hp.example/token".into()),
        scopes: Some("launch/patient openid fhirUser offline_access patient/*.read".into()),
    };
    assert!(store.set_payer_endpoints("brand-hp", &pinned, Timestamp::from_millis(2)).await.unwrap());
    assert!(!store.set_payer_endpoints("nope", &pinned, Timestamp::from_millis(2)).await.unwrap(), "no such entry");
    // A refresh of the brands file says nothing about endpoints: what the admin pinned stays.
    assert_eq!(
        store
            .apply_payer_entries(HP_BRANDS, &[brands_entry("Example Plan (renamed)", 3)], Timestamp::from_millis(1))
            .await
            .unwrap()
            .added,
        0
    );
    let stored = store.payer_entries().await.unwrap();
    assert_eq!(stored[0].name, "Example Plan (renamed)");
    assert_eq!(
        (stored[0].authorize_url.clone(), stored[0].token_url.clone(), stored[0].scopes.clone()),
        (pinned.authorize_url.clone(), pinned.token_url.clone(), pinned.scopes.clone())
    );
    // Cleared one at a time.
    let token_only = PinnedEndpoints { token_url: pinned.token_url.clone(), ..PinnedEndpoints::default() };
    assert!(store.set_payer_endpoints("brand-hp", &token_only, Timestamp::from_millis(4)).await.unwrap());
    let stored = store.payer_entries().await.unwrap();
    assert_eq!(
        (stored[0].authorize_url.as_deref(), stored[0].token_url.as_deref(), stored[0].scopes.as_deref()),
        (None, Some("https://auth.hp.example/token"), None)
    );
    assert_eq!(stored[0].updated_at, 4);
}

async fn configured_payers_are_switched_off_and_on(store: Store) {
    assert!(store.payer_enabled_overrides().await.unwrap().is_empty(), "configuration decides at first");
    store.set_payer_enabled_override("riverbend", Some(false), Timestamp::from_millis(1)).await.unwrap();
    store.set_payer_enabled_override("lakeshore", Some(true), Timestamp::from_millis(2)).await.unwrap();
    store.set_payer_enabled_override("riverbend", Some(true), Timestamp::from_millis(3)).await.unwrap();
    store.set_payer_enabled_override("riverbend", Some(false), Timestamp::from_millis(4)).await.unwrap();
    assert_eq!(
        store.payer_enabled_overrides().await.unwrap(),
        [
            PayerEnabledOverride { payer_id: "lakeshore".into(), enabled: true, updated_at: 2 },
            PayerEnabledOverride { payer_id: "riverbend".into(), enabled: false, updated_at: 4 },
        ]
    );
    // Back to what configuration says.
    store.set_payer_enabled_override("lakeshore", None, Timestamp::from_millis(5)).await.unwrap();
    store.set_payer_enabled_override("never-set", None, Timestamp::from_millis(5)).await.unwrap();
    let left: Vec<String> = store.payer_enabled_overrides().await.unwrap().into_iter().map(|o| o.payer_id).collect();
    assert_eq!(left, ["riverbend"]);
}

async fn every_directory_change_moves_its_version(store: Store) {
    let mut seen = store.payer_directory_version().await.unwrap();
    let mut moved = |now: i64, what: &str| {
        assert!(now > seen, "{what}: {seen} → {now}");
        seen = now;
    };
    store.apply_payer_entries(HP_BRANDS, &[brands_entry("Example Plan", 1)], Timestamp::from_millis(1)).await.unwrap();
    moved(store.payer_directory_version().await.unwrap(), "a brands entry added");
    store.apply_payer_entries(HP_BRANDS, &[brands_entry("Example Plan", 1)], Timestamp::from_millis(1)).await.unwrap();
    moved(store.payer_directory_version().await.unwrap(), "a brands refresh");
    store.set_payer_registration("brand-hp", Some("me"), Some("cred"), true, Timestamp::from_millis(1)).await.unwrap();
    moved(store.payer_directory_version().await.unwrap(), "a registration, in the same millisecond");
    store.set_payer_endpoints("brand-hp", &PinnedEndpoints::default(), Timestamp::from_millis(1)).await.unwrap();
    moved(store.payer_directory_version().await.unwrap(), "pinned endpoints");
    store.set_payer_enabled_override("riverbend", Some(false), Timestamp::from_millis(1)).await.unwrap();
    moved(store.payer_directory_version().await.unwrap(), "switched off");
    store.set_payer_enabled_override("riverbend", None, Timestamp::from_millis(1)).await.unwrap();
    moved(store.payer_directory_version().await.unwrap(), "back to configuration");
    store.payer_entries().await.unwrap();
    store.payer_enabled_overrides().await.unwrap();
    assert_eq!(store.payer_directory_version().await.unwrap(), seen, "reading changes nothing");
}
