//! A transfer worker process killed mid-transfer (SIGKILL, no chance to clean up): after its
//! lease runs out, a new worker resumes from the last committed page and ends with exactly the
//! records the previous plan holds — none missing, none twice.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_accounts::{Accounts, NewMember, NewPassword, ThrottlePolicy, Username};
use baton_holder::{ClientSettings, Holder, HolderSettings, SigningKey};
use baton_store::{ConnectOptions, MemberConsent, OAuthGrant, PayerLink, ResourceQuery, Store, Timestamp, TokenKind};
use baton_synth::{Options, Payer};
use baton_transfer::{Progress, TokenCipher};
use sha2::Digest;
use time::macros::date;
use tower_sessions::{MemoryStore, SessionManagerLayer};

const KEY: [u8; 32] = [9; 32];
const SCOPE: &str = "launch/patient offline_access patient/*.rs";

struct Worker(Child);

impl Worker {
    fn start(config: &std::path::Path, log: &std::path::Path) -> Self {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--config", config.to_str().unwrap(), "transfers", "work"])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start baton transfers work");
        Worker(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sha(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_resumed_to_exact_counts() {
    let dir = tempfile::tempdir().unwrap();

    // The previous plan: a holder with one member of 12,000 resources.
    let holder_store =
        Store::connect(&format!("sqlite://{}", dir.path().join("old.db").display()), &ConnectOptions::default())
            .await
            .unwrap();
    holder_store.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let holder_accounts = Accounts::new(holder_store.clone(), ThrottlePolicy::default());
    let settings = HolderSettings {
        clients: vec![ClientSettings {
            client_id: "new-plan".into(),
            name: "New Plan".into(),
            redirect_uris: vec!["https://new.example/cb".into()],
            secret: Some("a-long-shared-client-secret".into()),
            jwks: None,
            jwks_url: None,
            scopes: baton_holder::settings::default_client_scopes(),
        }],
        ..Default::default()
    };
    let key = SigningKey::from_pem(&SigningKey::generate_pem().unwrap()).unwrap();
    let holder = Holder::new(
        holder_store.clone(),
        holder_accounts.clone(),
        "Riverbend".into(),
        &url::Url::parse(&base).unwrap(),
        settings,
        key,
    );
    holder.register_clients().await.unwrap();
    let member = baton_synth::numbered_member("big", 1, 7);
    let account = holder_accounts
        .create_member(NewMember {
            username: Username::parse("big").unwrap(),
            display_name: "Big Record".into(),
            password: Some(NewPassword::parse("a member password").unwrap()),
            member_id: member.member_id.clone(),
            birth_date: member.birth_date,
            coverage_start: date!(2020 - 01 - 01),
        })
        .await
        .unwrap();
    holder_store.set_account_patient(account.id, &member.patient_id).await.unwrap();
    let mut options = Options::new(Payer {
        organization_id: "rb".into(),
        name: "Riverbend".into(),
        identifier_system: "https://rb.example".into(),
    });
    options.target_resources = 12_000;
    let fhir = holder.urls.fhir_base.clone();
    baton_records::load(&holder_store, baton_synth::record(&member, &options), &fhir, Some(account.id)).await.unwrap();
    let now = Timestamp::now();
    holder_store
        .insert_oauth_grant(&OAuthGrant {
            id: "g".into(),
            client_id: "new-plan".into(),
            account_id: account.id,
            patient_id: member.patient_id.clone(),
            scope: SCOPE.into(),
            include_sensitive: true,
            created_at: now.millis(),
            revoked_at: None,
        })
        .await
        .unwrap();
    holder_store
        .insert_oauth_token(&sha("access"), "g", TokenKind::Access, SCOPE, now, now.plus(time::Duration::hours(2)))
        .await
        .unwrap();
    let router = holder.router().layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    // The new plan: its database, the member, consent, link, and a queued transfer.
    let db = dir.path().join("new.db");
    let store = Store::connect(&format!("sqlite://{}", db.display()), &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    let me = accounts
        .create_member(NewMember {
            username: Username::parse("big").unwrap(),
            display_name: "Big Record".into(),
            password: Some(NewPassword::parse("a member password").unwrap()),
            member_id: "NEW-9".into(),
            birth_date: member.birth_date,
            coverage_start: date!(2026 - 01 - 01),
        })
        .await
        .unwrap();
    store
        .insert_consent(&MemberConsent {
            id: "c".into(),
            member_account: me.id,
            payer_id: "riverbend".into(),
            policy: "sensitive".into(),
            period_start: now.millis() - 1000,
            period_end: now.millis() + 86_400_000,
            given_at: now.millis(),
            channel: "web".into(),
            resource: "{}".into(),
            withdrawn_at: None,
            created_at: now.millis(),
        })
        .await
        .unwrap();
    let cipher = TokenCipher::new(&KEY);
    let link = PayerLink {
        id: "link".into(),
        member_account: me.id,
        payer_id: "riverbend".into(),
        consent_id: Some("c".into()),
        fhir_base: fhir.clone(),
        patient_id: Some(member.patient_id.clone()),
        scope: SCOPE.into(),
        include_sensitive: true,
        access_token: Some(cipher.seal("access").unwrap()),
        access_expires_at: Some(now.millis() + 7_200_000),
        refresh_token: None,
        id_token: None,
        state: "active".into(),
        created_at: now.millis(),
        updated_at: now.millis(),
    };
    store.insert_link(&link).await.unwrap();
    store.enqueue_transfer("t1", &link, "full", None, now).await.unwrap();

    let config = dir.path().join("baton.toml");
    let mut file = std::fs::File::create(&config).unwrap();
    write!(
        file,
        "database_url = \"sqlite://{db}\"\ndata_dir = \"{data}\"\npublic_url = \"https://new-plan.example/\"\n\
         [secrets]\ntoken_key = \"{key}\"\n[transfer]\npage_size = 50\nlease_seconds = 3\nhistory_years = 10\nconcurrency = 1\n\
         [[payers]]\nid = \"riverbend\"\nname = \"Riverbend\"\nfhir_base = \"{fhir}\"\nclient_id = \"new-plan\"\nclient_secret = \"a-long-shared-client-secret\"\n",
        db = db.display(),
        data = dir.path().display(),
        key = base64::engine::general_purpose::STANDARD.encode(KEY),
    )
    .unwrap();
    let log = dir.path().join("worker.log");

    // First worker: killed after a few pages.
    let mut worker = Worker::start(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let t = store.transfer("t1").await.unwrap().unwrap();
        if t.pages_done >= 5 {
            worker.kill();
            break t;
        }
        assert!(
            t.state == "queued" || t.state == "running",
            "{t:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "the worker made no progress:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after_kill = store.transfer("t1").await.unwrap().unwrap();
    assert_eq!(after_kill.state, "running", "the dead worker still holds it: {after_kill:?}");
    assert!(after_kill.pages_done < 240, "killed mid-transfer, not at the end ({} pages)", at_kill.pages_done);

    // Second worker: waits out the dead one's lease, resumes, completes.
    let mut worker = Worker::start(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        let t = store.transfer("t1").await.unwrap().unwrap();
        if t.state != "running" && t.state != "queued" {
            break t;
        }
        assert!(Instant::now() < deadline, "not resumed:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    worker.kill();
    assert_eq!(done.state, "completed", "{done:?}\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(done.attempts, 2, "claimed twice: once by each worker");
    assert!(done.pages_done >= 240, "all pages: {}", done.pages_done);

    // Exact counts: every resource of the previous plan, once.
    let progress = Progress::from_json(&done.progress);
    for t in baton_fhir::exchange::EXCHANGE_TYPES {
        let query = ResourceQuery {
            resource_types: vec![(*t).into()],
            patient_id: Some(member.patient_id.clone()),
            limit: 1,
            ..Default::default()
        };
        let source = holder_store.count_resources(&query).await.unwrap();
        if source > 0 {
            assert_eq!(progress.types.get(*t).map(|c| c.stored).unwrap_or(0), source, "{t}");
        }
        let mine = ResourceQuery {
            resource_types: vec![(*t).into()],
            member_account: Some(me.id),
            limit: 1,
            ..Default::default()
        };
        let stored = store.count_resources(&mine).await.unwrap();
        let expected = source + u64::from(*t == "Patient") + u64::from(*t == "Provenance");
        if source > 0 {
            assert_eq!(
                stored, expected,
                "{t}: stored once each (plus the member's own Patient and this plan's Provenance)"
            );
        }
    }
    let claims: Vec<String> = store
        .transfer_events("t1")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "claimed")
        .map(|e| e.detail)
        .collect();
    assert_eq!(claims.len(), 2, "{claims:?}");
    assert_ne!(claims[0], claims[1], "two different workers");
}
