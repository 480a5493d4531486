//! Two Batons on the Payer-to-Payer API, as `baton demo` runs them: the new plan's system is
//! registered at the old plan by the address of its public key, and a member brings their
//! records without signing in at the old plan — the new plan asks it to match them
//! (`Patient/$member-match` with their Consent, SMART Backend Services), then pulls what the
//! match allows.

use std::time::Duration;

use baton_holder::ClientSettings;
use baton_vocab::{LinkAccess, TransferState};
use reqwest::StatusCode;
use server::config::Config;
use server::demo::{DEMO_P2P_CLIENT_ID, NEW_PLAN_IDENTIFIER, OLD_PLAN_IDENTIFIER};
use server::startup::Application;

use crate::support::{PASSWORD, client};

struct Plans {
    new_plan: String,
    new_store: baton_store::Store,
    old_store: baton_store::Store,
    journey: baton_journey::Journey,
    engine: baton_transfer::Engine,
    _dirs: [tempfile::TempDir; 2],
}

async fn two_batons() -> Plans {
    let old_dir = tempfile::tempdir().unwrap();
    let mut old_config = crate::support::config(old_dir.path());
    old_config.plan.name = server::demo::OLD_PLAN_NAME.into();
    old_config.session_cookie = "baton_session_riverbend".into();
    old_config.holder.identifiers = vec![OLD_PLAN_IDENTIFIER.into()];
    let old = Application::build(old_config).await.expect("build the old plan");
    server::demo::seed_old_plan(&old).await.expect("the old plan's members and records");
    let old_url = old.public_url().clone();
    let old_store = old.store().clone();

    let new_dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::config(new_dir.path());
    config.holder.identifiers = vec![NEW_PLAN_IDENTIFIER.into()];
    config.transfer.history_years = 10;
    config.transfer.request_poll_seconds = 1;
    let old_as_configured = Config { public_url: Some(old_url), ..Config::default() };
    config.payers.push(server::demo::old_plan_payer(&old_as_configured, "unused-shared-secret-here".into()));
    let new = Application::build(config).await.expect("build the new plan");
    let new_plan = new.public_url().as_str().trim_end_matches('/').to_owned();
    let new_store = new.store().clone();
    let rb_maria = &baton_synth::demo_members("rb")[0];
    let mut maria = crate::support::member("maria", "Maria Garcia", "CVH-1");
    maria.birth_date = rb_maria.birth_date;
    new.services().accounts.create_member(maria).await.unwrap();
    new.services().accounts.create_member(crate::support::member("lee", "Lee Chen", "CVH-2")).await.unwrap();
    new.services()
        .accounts
        .create_staff(baton_accounts::NewStaff {
            username: baton_accounts::Username::parse("jordan").unwrap(),
            display_name: "Jordan Lee".into(),
            password: baton_accounts::NewPassword::parse(PASSWORD).unwrap(),
            roles: baton_vocab::Roles::of([baton_vocab::Role::Staff]),
        })
        .await
        .unwrap();

    // The old plan registers the new plan's system: its key by the address it publishes it at.
    let registration = ClientSettings {
        client_id: DEMO_P2P_CLIENT_ID.into(),
        name: "Cedar Valley Health (Payer-to-Payer)".into(),
        redirect_uris: vec![],
        secret: None,
        jwks: None,
        jwks_url: Some(format!("{new_plan}/p2p/jwks.json").parse().unwrap()),
        scopes: baton_staff::default_scopes(),
        identifiers: vec![NEW_PLAN_IDENTIFIER.into()],
    };
    baton_holder::clients::register(&old_store, &registration).await.unwrap();
    let journey = new.services().journey.clone();
    let engine = new.engine().clone();
    tokio::spawn(old.run_until_stopped());
    tokio::spawn(new.run_until_stopped());
    Plans { new_plan, new_store, old_store, journey, engine, _dirs: [old_dir, new_dir] }
}

async fn sign_in(plans: &Plans, username: &str) -> String {
    let response = client()
        .post(format!("{}/api/sign_in", plans.new_plan))
        .header("accept", "text/html")
        .header("origin", plans.new_plan.as_str())
        .form(&[("username", username), ("password", PASSWORD), ("next", "")])
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.starts_with("baton_session=").then(|| c.split(';').next().unwrap_or_default().to_owned()));
    cookie.expect("signed in")
}

/// The consent form's "ask them for me" button, as a browser without JavaScript posts it.
async fn ask(plans: &Plans, cookie: &str, member_id: &str) -> Option<String> {
    let response = client()
        .post(format!("{}/api/member/bring_by_match", plans.new_plan))
        .header("accept", "text/html")
        .header("origin", plans.new_plan.as_str())
        .header("cookie", cookie)
        .form(&[
            ("payer", "riverbend"),
            ("sensitive", "exclude"),
            ("member_id", member_id),
            ("given", "Maria"),
            ("family", "García"),
        ])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned)
}

async fn audit(store: &baton_store::Store, action: &str) -> Vec<baton_store::AuditEvent> {
    let query = baton_store::AuditQuery { action: Some(action.into()), limit: 100, ..Default::default() };
    store.search_audit(&query).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_brings_their_records_without_signing_in_at_the_old_plan() {
    let plans = two_batons().await;
    let cookie = sign_in(&plans, "maria").await;
    let page = crate::support::text(&format!("{}/member/bring/riverbend", plans.new_plan), &cookie).await;
    assert!(page.contains("id=\"by-match\"") && page.contains("value=\"Garcia\""), "the form offers it");

    // A member id the old plan never issued: no match, said as such, nothing linked.
    let location = ask(&plans, &cookie, "RB-000000").await;
    assert_eq!(location.as_deref(), Some("/member/bring/riverbend?problem=no_match#by-match"));
    let maria = plans.new_store.account_by_username("maria").await.unwrap().unwrap().id;
    assert!(plans.new_store.links_of(maria).await.unwrap().is_empty());

    // The id on her Riverbend card: matched (her name's accent and case do not matter), and the
    // records come.
    let rb_maria = &baton_synth::demo_members("rb")[0];
    let location = ask(&plans, &cookie, &rb_maria.member_id).await.expect("a redirect");
    let transfer_id = location.strip_prefix("/member/transfers/").expect("to the progress page").to_owned();
    let mut state = TransferState::Queued;
    for _ in 0..600 {
        state = plans.new_store.transfer(&transfer_id).await.unwrap().unwrap().state;
        if state.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let transfer = plans.new_store.transfer(&transfer_id).await.unwrap().unwrap();
    assert_eq!(state, TransferState::Completed, "{:?}", transfer.error);
    let link = plans.new_store.link(&transfer.link_id).await.unwrap().unwrap();
    assert_eq!(link.access, LinkAccess::PayerToPayer);
    assert!(link.refresh_token.is_none(), "a system token, renewed by asking again");
    let query = baton_store::ResourceQuery { member_account: Some(maria), limit: 5000, ..Default::default() };
    let received = plans.new_store.search_resources(&query).await.unwrap().resources;
    assert!(received.len() > 20, "{} records", received.len());
    assert!(received.iter().all(|r| !r.sensitive), "she left sensitive records out: none arrived");

    // Each side wrote down what happened.
    let asked = audit(&plans.new_store, "p2p.match.requested").await;
    let details: Vec<&str> = asked.iter().map(|e| e.detail.as_str()).collect();
    assert!(details.iter().any(|d| d.starts_with("no_match")) && details.iter().any(|d| d.starts_with("matched")));
    assert_eq!(audit(&plans.old_store, "p2p.member_match").await.len(), 1);
    assert!(!audit(&plans.old_store, "p2p.read").await.is_empty());
    let consent = plans.old_store.member_matches(DEMO_P2P_CLIENT_ID, rb_account(&plans).await).await.unwrap();
    assert_eq!(consent.len(), 1, "the old plan keeps the Consent with the match");

    // Nothing but the registered system gets in: the key set is public, the rest is not.
    let jwks = client().get(format!("{}/p2p/jwks.json", plans.new_plan)).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
    let jwks: serde_json::Value = jwks.json().await.unwrap();
    assert!(jwks["keys"][0]["kid"].is_string() && jwks["keys"][0].get("d").is_none());
}

async fn rb_account(plans: &Plans) -> baton_store::AccountId {
    plans.old_store.account_by_username("maria.garcia").await.unwrap().unwrap().id
}

/// The new plan's own obligation (CMS-0057-F): members opted in at enrollment or by phone are
/// asked for in one bulk request — `$bulk-member-match`, `$davinci-data-export`, the NDJSON
/// files — with no sign-in at the old plan; each member's result is recorded, the matched one's
/// records are filed as their Consent allows, and the next request is scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_members_are_asked_for_in_one_bulk_request() {
    use baton_journey::{CoverageInput, OptInChoice};
    use baton_vocab::{ConsentChannel, MatchResult, RequestState};

    let plans = two_batons().await;
    let now = baton_store::Timestamp::now();
    let maria = plans.new_store.account_by_username("maria").await.unwrap().unwrap().id;
    let lee = plans.new_store.account_by_username("lee").await.unwrap().unwrap().id;
    let rb_maria = &baton_synth::demo_members("rb")[0];
    let phone = OptInChoice {
        include_sensitive: false,
        channel: ConsentChannel::Phone,
        recorded_by: "staff.jordan".into(),
        at: now,
    };
    // Lee's came with the roster; Maria told staff on the phone, who record it in the console.
    let input = CoverageInput::parse("riverbend", "RB-999999", None, None, false).unwrap();
    plans.journey.record_previous_coverage(lee, &input, Some(&phone), "roster", now).await.unwrap();
    let staff = sign_in(&plans, "jordan").await;
    let post = |form: Vec<(&'static str, String)>| {
        client()
            .post(format!("{}/api/staff/member/opt_in", plans.new_plan))
            .header("accept", "text/html")
            .header("origin", plans.new_plan.as_str())
            .header("cookie", staff.as_str())
            .form(&form)
            .send()
    };
    let mut form = vec![
        ("member", maria.0.to_string()),
        ("payer", "riverbend".to_owned()),
        ("member_id", rb_maria.member_id.clone()),
        ("channel", "phone".to_owned()),
    ];
    // Nothing is pre-selected: without her sensitive choice nothing is recorded.
    let refused = post(form.clone()).await.unwrap();
    let location = refused.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.contains("opt_in_problem=sensitive"), "{location}");
    assert!(plans.new_store.previous_coverages(maria).await.unwrap().is_empty());
    form.push(("sensitive", "exclude".to_owned()));
    let recorded = post(form).await.unwrap();
    let location = recorded.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
    assert!(location.contains("opt_in=recorded"), "{location}");
    let coverage = &plans.new_store.previous_coverages(maria).await.unwrap()[0];
    assert_eq!(
        (coverage.opt_in_channel, coverage.opt_in_recorded_by.as_deref()),
        (Some(ConsentChannel::Phone), Some("jordan"))
    );
    let page = crate::support::text(&format!("{}/staff/requests", plans.new_plan), &staff).await;
    let waiting = page.split("id=\"waiting\"").nth(1).unwrap_or_default();
    assert!(waiting.contains("Maria Garcia") && waiting.contains("Lee Chen"), "both wait to be asked: {page}");

    let started = plans.engine.queue_due_requests(baton_store::Timestamp::now()).await.unwrap();
    assert_eq!(started.len(), 1, "one request carries both members");
    let mut request = plans.new_store.request(&started[0]).await.unwrap().unwrap();
    for _ in 0..900 {
        request = plans.new_store.request(&started[0]).await.unwrap().unwrap();
        if request.state.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(request.state, RequestState::Completed, "{:?} {:?}", request.error, request.checkpoint);
    assert_eq!((request.members, request.matched, request.not_matched), (2, 1, 1), "{}", request.checkpoint);
    assert!(request.lines > 20, "{} lines read", request.lines);
    assert_eq!(request.rejected, 0, "{}", request.checkpoint);
    assert_eq!(request.progress_note, None, "a finished request waits for nothing");

    let members = plans.new_store.request_members(&request.id).await.unwrap();
    let of = |account| members.iter().find(|m| m.member_account == account).unwrap();
    assert_eq!(of(lee).result, Some(MatchResult::NoMatch));
    assert!(of(lee).transfer_id.is_none());
    assert_eq!(of(maria).result, Some(MatchResult::Matched));
    let transfer = plans.new_store.transfer(of(maria).transfer_id.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(transfer.state, TransferState::Completed, "{:?}", transfer.error);
    let link = plans.new_store.link(&transfer.link_id).await.unwrap().unwrap();
    assert_eq!(link.access, LinkAccess::BulkExport);

    let query = baton_store::ResourceQuery { member_account: Some(maria), limit: 5000, ..Default::default() };
    let received = plans.new_store.search_resources(&query).await.unwrap().resources;
    assert!(received.len() > 20, "{} records", received.len());
    assert!(received.iter().all(|r| !r.sensitive), "she left sensitive records out: none arrived");
    assert!(received.iter().any(|r| r.resource_type == "ExplanationOfBenefit"));
    let query = baton_store::ResourceQuery { member_account: Some(lee), limit: 10, ..Default::default() };
    let lees = plans.new_store.search_resources(&query).await.unwrap().resources;
    assert!(lees.iter().all(|r| r.resource_type == "Patient"), "nothing of anyone else's reached Lee");

    // Asked again for what changes in the run-off period, only for the member matched.
    let coverages = plans.new_store.previous_coverages(maria).await.unwrap();
    assert!(coverages[0].next_request_at.is_some() && coverages[0].last_exported_at.is_some());
    assert!(plans.new_store.previous_coverages(lee).await.unwrap()[0].next_request_at.is_none());
    assert!(plans.engine.queue_due_requests(baton_store::Timestamp::now()).await.unwrap().is_empty());
    assert!(!audit(&plans.new_store, "p2p.opt_in.recorded").await.is_empty());
    let changes = audit(&plans.new_store, "p2p.request.changed").await;
    let said: Vec<&str> = changes.iter().map(|e| e.detail.as_str()).collect();
    assert!(said.contains(&"started: 2 members to riverbend") && said.contains(&"completed"), "{said:?}");

    // Staff see the request: its counts, each member's answer, the records filed.
    let page = crate::support::text(&format!("{}/staff/requests", plans.new_plan), &staff).await;
    assert!(page.contains(&format!("/staff/requests/{}", request.id)) && page.contains("id=\"no-waiting\""), "{page}");
    let page = crate::support::text(&format!("{}/staff/requests/{}", plans.new_plan, request.id), &staff).await;
    assert!(page.contains("id=\"request-matched\">1<"), "{page}");
    assert!(page.contains("data-result=\"matched\"") && page.contains("data-result=\"no_match\""), "{page}");
    let filed = baton_transfer::Progress::from_json(&transfer.progress).records();
    assert!(page.contains(&format!("id=\"request-records\">{filed}<")), "{filed} records: {page}");
    assert!(!audit(&plans.new_store, "p2p.request.view").await.is_empty());
}
