//! A worker process asking a previous plan for a member on the Payer-to-Payer API, killed
//! (SIGKILL, no chance to clean up) while the previous plan is matching, while it is exporting
//! and in the middle of a file: each time a new worker process takes the request over, and in
//! the end the member has exactly the records the previous plan holds — none missing, none
//! twice. On SQLite, and on PostgreSQL.

use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_accounts::{NewMember, NewPassword, Username};
use baton_holder::ClientSettings;
use baton_store::testing::TestDatabase;
use baton_store::{AccountId, ResourceQuery, Store, Timestamp};
use baton_transfer::{BackendKey, Progress};
use baton_vocab::{RequestState, TransferState};
use serde_json::Value;
use server::demo::{DEMO_P2P_CLIENT_ID, NEW_PLAN_IDENTIFIER, OLD_PLAN_IDENTIFIER};
use server::startup::Application;
use time::macros::date;

use crate::kill::Worker;

/// Resources of the member at the previous plan: enough for many commits of one file.
const RESOURCES: usize = 4_000;
const LINES_PER_COMMIT: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_worker_is_killed_in_each_phase_ends_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("new.db").display());
    killed_in_each_phase(dir, database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_worker_is_killed_in_each_phase_ends_with_exact_counts_on_postgresql() {
    let database = TestDatabase::create().await;
    let outcome = tokio::spawn(killed_in_each_phase(tempfile::tempdir().unwrap(), database.url.clone())).await;
    database.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// The previous plan: a Baton holding Rosa's record, with the new plan's system registered by
/// its public key. Returns its public URL and store.
async fn previous_plan(dir: &std::path::Path, key: &BackendKey) -> (url::Url, Store) {
    let mut config = crate::support::config(dir);
    config.plan.name = server::demo::OLD_PLAN_NAME.into();
    config.session_cookie = "baton_session_riverbend".into();
    config.holder.identifiers = vec![OLD_PLAN_IDENTIFIER.into()];
    let old = Application::build(config).await.expect("build the old plan");
    let rosa = server::demo::bulk_member();
    let account = old
        .services()
        .accounts
        .create_member(NewMember {
            username: Username::parse("rosa.martinez").unwrap(),
            display_name: "Rosa Martínez".into(),
            password: Some(NewPassword::parse(crate::support::PASSWORD).unwrap()),
            member_id: rosa.member_id.clone(),
            birth_date: rosa.birth_date,
            coverage_start: date!(2020 - 01 - 01),
        })
        .await
        .unwrap();
    let store = old.store().clone();
    store.set_account_patient(account.id, &rosa.patient_id).await.unwrap();
    let payer = baton_synth::Payer {
        organization_id: "riverbend-health-plan".into(),
        name: server::demo::OLD_PLAN_NAME.into(),
        identifier_system: "https://riverbend.example".into(),
    };
    let mut options = baton_synth::Options::new(payer);
    options.target_resources = RESOURCES;
    let fhir_base = old.holder().urls.fhir_base.clone();
    baton_records::load(&store, baton_synth::record(&rosa, &options), &fhir_base, Some(AccountId(account.id.0)))
        .await
        .unwrap();
    let registration = ClientSettings {
        client_id: DEMO_P2P_CLIENT_ID.into(),
        name: "Cedar Valley Health (Payer-to-Payer)".into(),
        redirect_uris: vec![],
        secret: None,
        jwks: Some(serde_json::to_string(&key.jwks()).unwrap()),
        jwks_url: None,
        scopes: baton_staff::default_scopes(),
        identifiers: vec![NEW_PLAN_IDENTIFIER.into()],
    };
    baton_holder::clients::register(&store, &registration).await.unwrap();
    let url = old.public_url().clone();
    tokio::spawn(old.run_until_stopped());
    (url, store)
}

async fn killed_in_each_phase(dir: tempfile::TempDir, database_url: String) {
    let key = BackendKey::from_pem(crate::support::id_token_key()).unwrap();
    std::fs::create_dir_all(dir.path().join("old")).unwrap();
    let (old_url, old_store) = previous_plan(&dir.path().join("old"), &key).await;

    // The new plan: Rosa, her previous coverage at Riverbend and her opt-in (sensitive
    // information included), recorded by an app that is then closed; only workers run.
    std::fs::create_dir_all(dir.path().join("new")).unwrap();
    let mut config = crate::support::config(&dir.path().join("new"));
    config.database_url = Some(database_url.clone().into());
    config.holder.identifiers = vec![NEW_PLAN_IDENTIFIER.into()];
    config.transfer.workers = false;
    let old_as_configured = server::config::Config { public_url: Some(old_url), ..Default::default() };
    let payer = server::demo::old_plan_payer(&old_as_configured, "unused-shared-secret-here".into());
    config.payers.push(payer.clone());
    let new = Application::build(config).await.expect("build the new plan");
    let mut rosa = crate::support::member("rosa", "Rosa Martínez", "CVH-102311");
    rosa.birth_date = server::demo::bulk_member().birth_date;
    let account = new.services().accounts.create_member(rosa).await.unwrap();
    let member = AccountId(account.id.0);
    let input = baton_journey::CoverageInput::parse("riverbend", "RB-206112", Some(date!(2020 - 01 - 01)), None, false)
        .unwrap();
    let opt_in = baton_journey::OptInChoice {
        include_sensitive: true,
        channel: baton_vocab::ConsentChannel::Enrollment,
        recorded_by: "roster".into(),
        at: Timestamp::now(),
    };
    new.services()
        .journey
        .record_previous_coverage(member, &input, Some(&opt_in), "roster", Timestamp::now())
        .await
        .unwrap();
    let store = new.store().clone();
    drop(new);

    let config_file = dir.path().join("worker.toml");
    std::fs::write(
        &config_file,
        format!(
            "database_url = \"{database_url}\"\ndata_dir = \"{data}\"\npublic_url = \"https://new-plan.example/\"\n\
             [secrets]\ntoken_key = \"{token_key}\"\nsession_key = \"{session_key}\"\n\
             id_token_key = '''{pem}'''\nbackend_key = '''{pem}'''\n\
             [transfer]\nlease_seconds = 3\nconcurrency = 1\nhistory_years = 10\nrequest_poll_seconds = 1\n\
             request_lines_per_commit = {LINES_PER_COMMIT}\n\
             [[payers]]\nid = \"riverbend\"\nname = \"Riverbend\"\nfhir_base = \"{fhir}\"\nclient_id = \"{client}\"\n\
             client_secret = \"unused-shared-secret-here\"\np2p_client_id = \"{DEMO_P2P_CLIENT_ID}\"\n",
            data = dir.path().join("new").display(),
            token_key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
            session_key = base64::engine::general_purpose::STANDARD.encode([7u8; 64]),
            pem = crate::support::id_token_key(),
            fhir = payer.fhir_base,
            client = payer.client_id,
        ),
    )
    .unwrap();
    let log = dir.path().join("worker.log");

    // Kill a worker in each phase; the next one takes over.
    let phases: [(&str, fn(&baton_store::P2pRequest) -> bool); 3] = [
        ("the match poll", |r| r.state == RequestState::Matching && phase(r) == "match_poll"),
        ("the export poll", |r| r.state == RequestState::Exporting && phase(r) == "export_poll"),
        ("the middle of a file", |r| r.state == RequestState::Downloading && line(r) >= 4 * LINES_PER_COMMIT as u64),
    ];
    let mut request_id = None;
    for (what, reached) in phases {
        let mut worker = Worker::start(&config_file, &log);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if request_id.is_none() {
                request_id = store.requests(None, 10).await.unwrap().first().map(|r| r.id.clone());
            }
            if let Some(id) = &request_id {
                let request = store.request(id).await.unwrap().unwrap();
                assert!(!request.state.is_finished(), "finished before {what}: {request:?}\n{}", read(&log));
                if reached(&request) {
                    worker.kill();
                    break;
                }
            }
            assert!(Instant::now() < deadline, "never reached {what}:\n{}", read(&log));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let id = request_id.unwrap();
    let killed_at = store.request(&id).await.unwrap().unwrap();
    assert_eq!(killed_at.state, RequestState::Downloading, "killed mid-file: {killed_at:?}");

    // The last worker: takes over, reads the rest, files Rosa's records.
    let mut worker = Worker::start(&config_file, &log);
    let deadline = Instant::now() + Duration::from_secs(240);
    let request = loop {
        let request = store.request(&id).await.unwrap().unwrap();
        if request.state.is_finished() {
            break request;
        }
        assert!(Instant::now() < deadline, "not resumed: {request:?}\n{}", read(&log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    worker.kill();
    assert_eq!(request.state, RequestState::Completed, "{request:?}\n{}", read(&log));
    assert_eq!((request.members, request.matched), (1, 1));
    assert!(request.attempts >= 4, "taken over after each kill: {request:?}");
    let members = store.request_members(&id).await.unwrap();
    let transfer = store.transfer(members[0].transfer_id.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(transfer.state, TransferState::Completed, "{transfer:?}");

    // Exact counts: every record the previous plan holds for Rosa, once.
    let progress = Progress::from_json(&transfer.progress);
    let rosa = server::demo::bulk_member();
    let mut compared = 0;
    for t in baton_fhir::exchange::EXCHANGE_TYPES {
        if matches!(*t, "Patient" | "Provenance") {
            continue; // the member's own Patient and this plan's custodian Provenance are added
        }
        let source = ResourceQuery {
            resource_types: vec![(*t).into()],
            patient_id: Some(rosa.patient_id.clone()),
            limit: 1,
            ..Default::default()
        };
        let held = old_store.count_resources(&source).await.unwrap();
        if held == 0 {
            continue; // not in Rosa's compartment there (Organizations and the like are shared)
        }
        let mine = ResourceQuery {
            resource_types: vec![(*t).into()],
            member_account: Some(member),
            limit: 1,
            ..Default::default()
        };
        let stored = store.count_resources(&mine).await.unwrap();
        assert_eq!(stored, held, "{t}: each record the previous plan holds, once");
        assert_eq!(progress.types.get(*t).map(|c| c.stored).unwrap_or(0), held, "{t}: counted once");
        compared += held;
    }
    assert!(compared > RESOURCES as u64 / 2, "most of the record compared: {compared}");
}

fn step(request: &baton_store::P2pRequest) -> Value {
    serde_json::from_str::<Value>(&request.checkpoint).map(|c| c["step"].clone()).unwrap_or_default()
}

fn phase(request: &baton_store::P2pRequest) -> String {
    step(request)["phase"].as_str().unwrap_or_default().to_owned()
}

fn line(request: &baton_store::P2pRequest) -> u64 {
    step(request)["line"].as_u64().unwrap_or(0)
}

fn read(log: &std::path::Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}
