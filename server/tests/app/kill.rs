//! A transfer worker process killed mid-transfer (SIGKILL, no chance to clean up): after its
//! lease runs out, a new worker resumes from the last committed page and ends with exactly the
//! records the previous plan holds — none missing, none twice. On SQLite, and on PostgreSQL,
//! where two page commits are in flight when the kill comes.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_store::testing::TestDatabase;
use baton_store::{ConnectOptions, ResourceQuery, Store, Timestamp};
use baton_testbed::{PreviousPlanSetup, enroll, previous_plan};
use baton_transfer::{Progress, TokenCipher};

const KEY: [u8; 32] = [9; 32];

pub(crate) struct Worker(Child);

impl Worker {
    pub(crate) fn start(config: &std::path::Path, log: &std::path::Path) -> Self {
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

    pub(crate) fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_resumed_to_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("new.db").display());
    killed_and_resumed(dir, database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_resumed_to_exact_counts_on_postgresql() {
    let database = TestDatabase::create().await;
    let outcome = tokio::spawn(killed_and_resumed(tempfile::tempdir().unwrap(), database.url.clone())).await;
    database.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

async fn killed_and_resumed(dir: tempfile::TempDir, database_url: String) {
    // The previous plan: a holder with one member of 12,000 resources.
    let holder_store =
        Store::connect(&format!("sqlite://{}", dir.path().join("old.db").display()), &ConnectOptions::default())
            .await
            .unwrap();
    holder_store.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let member = baton_synth::numbered_member("big", 1, 7);
    let previous = previous_plan(holder_store.clone(), PreviousPlanSetup::new(base, member, 12_000)).await.unwrap();
    let router = previous.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let fhir = previous.authorization.fhir_base.clone();

    // The new plan: its database, the member, consent, link, and a queued transfer.
    let store = Store::connect(&database_url, &ConnectOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let cipher = TokenCipher::new(&KEY);
    let me =
        enroll(&store, &previous.member, &previous.authorization, true, |t, place| cipher.seal_for(t, place).unwrap())
            .await
            .unwrap();
    store.enqueue_transfer("t1", &me.link, baton_vocab::TransferKind::Full, None, Timestamp::now()).await.unwrap();

    let config = dir.path().join("baton.toml");
    let mut file = std::fs::File::create(&config).unwrap();
    write!(
        file,
        "database_url = \"{database_url}\"\ndata_dir = \"{data}\"\npublic_url = \"https://new-plan.example/\"\n\
         [secrets]\ntoken_key = \"{key}\"\nsession_key = \"{session}\"\nid_token_key = '''{id_token_key}'''\n[transfer]\npage_size = 50\nlease_seconds = 3\nhistory_years = 10\nconcurrency = 1\n\
         [[payers]]\nid = \"{payer}\"\nname = \"Riverbend\"\nfhir_base = \"{fhir}\"\nclient_id = \"{client}\"\nclient_secret = \"{secret}\"\n",
        data = dir.path().display(),
        key = base64::engine::general_purpose::STANDARD.encode(KEY),
        session = base64::engine::general_purpose::STANDARD.encode([7u8; 64]),
        id_token_key = crate::support::id_token_key(),
        payer = baton_testbed::PAYER_ID,
        client = baton_testbed::CLIENT_ID,
        secret = baton_testbed::CLIENT_SECRET,
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
            t.state == baton_vocab::TransferState::Queued || t.state == baton_vocab::TransferState::Running,
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
    assert_eq!(after_kill.state, baton_vocab::TransferState::Running, "the dead worker still holds it: {after_kill:?}");
    assert!(after_kill.pages_done < 240, "killed mid-transfer, not at the end ({} pages)", at_kill.pages_done);

    // Second worker: waits out the dead one's lease, resumes, completes.
    let mut worker = Worker::start(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(240);
    let done = loop {
        let t = store.transfer("t1").await.unwrap().unwrap();
        if t.state != baton_vocab::TransferState::Running && t.state != baton_vocab::TransferState::Queued {
            break t;
        }
        assert!(Instant::now() < deadline, "not resumed:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    worker.kill();
    assert_eq!(
        done.state,
        baton_vocab::TransferState::Completed,
        "{done:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(done.attempts, 2, "claimed twice: once by each worker");
    assert!(done.pages_done >= 240, "all pages: {}", done.pages_done);

    // Exact counts: every resource of the previous plan, once.
    let progress = Progress::from_json(&done.progress);
    let custodian = {
        let query = ResourceQuery {
            resource_types: vec!["Provenance".into()],
            member_account: Some(me.member),
            limit: 10_000,
            ..Default::default()
        };
        let page = store.search_resources(&query).await.unwrap();
        page.resources.iter().filter(|r| r.id.starts_with("transfer-")).count() as u64
    };
    assert!(custodian >= 240, "a custodian Provenance per committed page: {custodian}");
    for t in baton_fhir::exchange::EXCHANGE_TYPES {
        let query = ResourceQuery {
            resource_types: vec![(*t).into()],
            patient_id: Some(previous.member.patient_id.clone()),
            limit: 1,
            ..Default::default()
        };
        let source = holder_store.count_resources(&query).await.unwrap();
        if source > 0 {
            assert_eq!(progress.types.get(*t).map(|c| c.stored).unwrap_or(0), source, "{t}");
        }
        let mine = ResourceQuery {
            resource_types: vec![(*t).into()],
            member_account: Some(me.member),
            limit: 1,
            ..Default::default()
        };
        let stored = store.count_resources(&mine).await.unwrap();
        let expected = source + u64::from(*t == "Patient") + if *t == "Provenance" { custodian } else { 0 };
        if source > 0 {
            assert_eq!(
                stored, expected,
                "{t}: stored once each (plus the member's own Patient and this plan's custodian Provenance)"
            );
        }
    }
    let claims: Vec<String> = store
        .transfer_events("t1")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == baton_vocab::EventKind::Claimed)
        .map(|e| e.detail)
        .collect();
    assert_eq!(claims.len(), 2, "{claims:?}");
    assert_ne!(claims[0], claims[1], "two different workers");
}
