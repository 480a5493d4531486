//! The measured children of `baton-bench export`: filling a database, serving it as a holder,
//! and reading what an export carries straight from the store.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use baton_store::{
    BulkJob, ConnectOptions, MemberGroup, MemberMatch, NewAccount, ResourceQuery, Store, StoreError, Timestamp,
};
use baton_vocab::{BulkJobState, ConsentPolicy};
use serde_json::{Value, json};

use super::{CLIENT_ID, Made, SetupArgs, match_member, rsa_pem};
use crate::ingest::{Figures, peak_rss_kib};
async fn open(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url, &ConnectOptions::default()).await?;
    store.migrate().await?;
    Ok(store)
}

pub(super) async fn setup(args: SetupArgs) -> anyhow::Result<Made> {
    let store = open(&args.database_url).await?;
    let settings = baton_holder::ClientSettings {
        client_id: CLIENT_ID.into(),
        name: "Benchmark New Plan".into(),
        redirect_uris: vec![],
        secret: None,
        jwks: Some(args.jwks.clone()),
        jwks_url: None,
        scopes: "system/*.rs http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch".into(),
        identifiers: vec![],
    };
    baton_holder::clients::register(&store, &settings).await?;
    let fhir_base = "http://bench.invalid/fhir";
    let now = Timestamp::now();
    let payer = baton_synth::Payer {
        organization_id: "bench-old-plan".into(),
        name: "Benchmark Old Plan".into(),
        identifier_system: "https://old-plan.invalid".into(),
    };
    let mut members = vec![];
    let mut resources = 0u64;
    for n in 0..args.members {
        let member = baton_synth::numbered_member("export", n, 2026);
        let account = account(&store, &member).await?;
        let mut options = baton_synth::Options::new(payer.clone());
        options.target_resources = args.resources;
        let record = baton_synth::record(&member, &options);
        resources += baton_records::load(&store, record, fhir_base, Some(account)).await?.stored as u64;
        store
            .insert_member_match(&MemberMatch {
                id: uuid::Uuid::new_v4().to_string(),
                client_id: CLIENT_ID.into(),
                account_id: account,
                policy: ConsentPolicy::Sensitive,
                period_start: now.plus(time::Duration::days(-1)).millis(),
                period_end: now.plus(time::Duration::days(90)).millis(),
                consent: "{}".into(),
                matched_at: now.millis(),
            })
            .await?;
        members.push(json!({"entity": {"reference": format!("Patient/{}", member.patient_id)}}));
        if n % 100 == 99 {
            eprintln!("baton-bench: {} members stored", n + 1);
        }
    }
    for n in 0..args.match_members {
        let member = match_member(n);
        let account = account(&store, &member).await?;
        let patient = json!({"resourceType": "Patient", "id": member.patient_id, "gender": member.gender,
            "name": [{"family": member.family, "given": [member.given]}], "birthDate": baton_vocab::day::format(member.birth_date)});
        baton_records::load(&store, vec![patient], fhir_base, Some(account)).await?;
    }
    let group = if members.is_empty() {
        None
    } else {
        let id = uuid::Uuid::new_v4().to_string();
        let body = json!({"resourceType": "Group", "id": id, "type": "person", "actual": true,
            "code": {"coding": [{"code": "match"}]}, "quantity": members.len(), "member": members});
        let job = BulkJob {
            id: format!("setup-{id}"),
            client_id: CLIENT_ID.into(),
            kind: "bulk-member-match".into(),
            // As a worker holds it, so that completing it files the Group.
            state: BulkJobState::Running,
            request_url: String::new(),
            request: "{}".into(),
            total: 0,
            done: 0,
            error: None,
            created_at: now.millis(),
            updated_at: now.millis(),
            completed_at: None,
            expires_at: now.plus(time::Duration::days(1)).millis(),
        };
        store.insert_bulk_job(&job).await?;
        let group = MemberGroup {
            id: id.clone(),
            client_id: CLIENT_ID.into(),
            job_id: job.id.clone(),
            code: "match".into(),
            body: body.to_string(),
            created_at: now.millis(),
        };
        anyhow::ensure!(store.complete_bulk_job(&job.id, &[], &[group], now).await?, "the Group was not filed");
        Some(id)
    };
    // What autovacuum does soon after a load like this: without statistics PostgreSQL plans the
    // member's reads for empty tables (sequential scans of every reference, per member).
    if let baton_store::Db::Postgres(pool) = store.db() {
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    store.close().await;
    Ok(Made { group, resources })
}

async fn account(store: &Store, member: &baton_synth::Member) -> Result<baton_store::AccountId, StoreError> {
    let account = store
        .insert_account(&NewAccount {
            username: member.patient_id.clone(),
            display_name: format!("{} {}", member.given, member.family),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Member]),
            member_id: Some(member.member_id.clone()),
            birth_date: Some(member.birth_date),
            ..Default::default()
        })
        .await?;
    store.set_account_patient(account, &member.patient_id).await?;
    Ok(account)
}

pub(super) async fn serve(database_url: &str) -> anyhow::Result<()> {
    let store = Store::connect(database_url, &ConnectOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let public = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
    let accounts = baton_accounts::Accounts::new(store.clone(), baton_accounts::ThrottlePolicy::default());
    let key = baton_holder::SigningKey::from_pem(&rsa_pem()?)?;
    let holder = baton_holder::Holder::new(
        store,
        accounts,
        "Benchmark Old Plan".into(),
        &public,
        baton_holder::HolderSettings::default(),
        key,
    );
    let fhir_base = holder.urls.fhir_base.clone();
    tokio::spawn(async move { axum::serve(listener, holder.router()).await });
    let mut out = std::io::stdout();
    writeln!(out, "{fhir_base}")?;
    out.flush()?;
    // Until the orchestrator closes stdin.
    tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await?;
    writeln!(out, "{}", peak_rss_kib())?;
    out.flush()?;
    Ok(())
}

/// The export's rows read as the export reads them — each member's compartment, then the
/// directory entries their records name, in pages — and written as NDJSON to nowhere.
pub(super) async fn raw(database_url: &str, group: &str) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let mut out = std::io::sink();
    let (mut resources, mut bytes) = (0u64, 0u64);
    each_exported_row(database_url, group, |body| {
        let _ = out.write_all(body.as_bytes()).and_then(|()| out.write_all(b"\n"));
        bytes += body.len() as u64 + 1;
        resources += 1;
    })
    .await?;
    Ok(Figures { resources, bytes, seconds: started.elapsed().as_secs_f64(), peak_rss_kib: peak_rss_kib() })
}

/// Each row an export of `group` carries, as the export reads them: each member's compartment,
/// then the directory entries their records name, in pages.
pub(crate) async fn each_exported_row(
    database_url: &str,
    group: &str,
    mut each: impl FnMut(&str),
) -> anyhow::Result<()> {
    let store = Store::connect(database_url, &ConnectOptions::default()).await?;
    let group = store.member_group(CLIENT_ID, group).await?.context("no such Group")?;
    let body: Value = serde_json::from_str(&group.body)?;
    let patients: Vec<String> = body["member"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["entity"]["reference"].as_str()?.strip_prefix("Patient/").map(str::to_owned))
        .collect();
    let types: Vec<String> = baton_fhir::exchange::EXCHANGE_TYPES.iter().map(|t| (*t).to_owned()).collect();
    let (compartment, directory): (Vec<String>, Vec<String>) =
        types.into_iter().partition(|t| baton_fhir::exchange::is_compartment_type(t));
    for patient in &patients {
        for (resource_types, in_compartment) in [(compartment.clone(), true), (directory.clone(), false)] {
            let mut query = ResourceQuery { resource_types, limit: 1000, ..Default::default() };
            if in_compartment {
                query.patient_id = Some(patient.clone());
            } else {
                query.no_compartment = true;
                query.referenced_by_patient = Some(patient.clone());
            }
            loop {
                let page = store.search_resources(&query).await?;
                for resource in &page.resources {
                    each(&resource.body);
                }
                match page.next_after_seq {
                    Some(after) => {
                        query.after_seq = Some(after);
                        query.snapshot_seq = Some(page.snapshot_seq);
                    }
                    None => break,
                }
            }
        }
    }
    store.close().await;
    Ok(())
}
