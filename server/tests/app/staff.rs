//! The staff console over HTTP against a real Baton: who may open what (every staff page and
//! server function tried as nobody, as a member and as staff; admin pages as staff; one
//! member's transfer as another member), audit records for views and actions, the roster
//! upload → preview → commit → invitation → password flow, the CSV export, and sensitive
//! records hidden until a privacy officer reveals them.

use baton_accounts::{NewPassword, NewStaff, Role, Roles, Username};
use baton_store::{AccountId, AuditQuery, MemberConsent, PayerEntry, PayerLink, Timestamp};
use reqwest::StatusCode;
use serde_json::json;
use server::config::Config;
use server::startup::Application;
use time::macros::date;

use crate::support::PASSWORD;

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) services: app::ssr::Services,
    pub(crate) store: baton_store::Store,
    pub(crate) maria: AccountId,
    /// What the app's log-only mailer kept.
    pub(crate) mailer: baton_mail::Mailer,
    _dir: tempfile::TempDir,
}

use crate::support::client;

pub(crate) async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::config(dir.path());
    // Transfers here are made by hand and must stay as they are.
    config.transfer.workers = false;
    configure(&mut config);
    let app = Application::build(config).await.expect("build the app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let store = app.store().clone();
    let member = crate::support::member;
    let maria = services.accounts.create_member(member("maria", "Maria Garcia", "M-1")).await.unwrap().id;
    services.accounts.create_member(member("ana", "Ana Lopez", "M-2")).await.unwrap();
    for (username, roles) in [
        ("sam", Roles::of([Role::Staff])),
        ("pat", Roles::of([Role::Staff, Role::Privacy])),
        ("alex", Roles::of([Role::Staff, Role::Admin])),
    ] {
        services
            .accounts
            .create_staff(NewStaff {
                username: Username::parse(username).unwrap(),
                display_name: username.to_uppercase(),
                password: NewPassword::parse(PASSWORD).unwrap(),
                roles,
            })
            .await
            .unwrap();
    }
    let mailer = app.mailer().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp { base, services, store, maria, mailer, _dir: dir }
}

impl TestApp {
    pub(crate) async fn sign_in(&self, username: &str) -> String {
        let response = client()
            .post(format!("{}/api/sign_in", self.base))
            .header("accept", "text/html")
            .header("origin", self.base.as_str())
            .header("referer", format!("{}/sign-in", self.base))
            .form(&[("username", username), ("password", PASSWORD), ("next", "")])
            .send()
            .await
            .unwrap();
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("baton_session="))
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
            .expect("signed in")
    }

    pub(crate) async fn get(&self, path: &str, cookie: Option<&str>) -> (StatusCode, String, Option<String>) {
        // As a browser navigates: accepting HTML.
        let mut request = client().get(format!("{}{path}", self.base)).header("accept", "text/html");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        (response.status(), response.text().await.unwrap(), location)
    }

    /// A server function called like a plain HTML form.
    pub(crate) async fn post(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> (StatusCode, Option<String>) {
        let mut request = client()
            .post(format!("{}/api/{endpoint}", self.base))
            .header("origin", self.base.as_str())
            .header("accept", "text/html")
            .header("referer", format!("{}/staff", self.base))
            .form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
        (response.status(), location)
    }

    /// The same server function called by the app's own JavaScript (answers with the status).
    pub(crate) async fn call(&self, endpoint: &str, form: &[(&str, &str)], cookie: Option<&str>) -> StatusCode {
        let mut request =
            client().post(format!("{}/api/{endpoint}", self.base)).header("origin", self.base.as_str()).form(form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap().status()
    }

    /// A consent, a link and a transfer for `member`, as the journey would leave them.
    async fn transfer_for(&self, member: AccountId, state: &str) -> String {
        let store = &self.store;
        let now = Timestamp::now();
        let id = uuid::Uuid::new_v4().to_string();
        store
            .insert_consent(&MemberConsent {
                id: format!("c-{id}"),
                member_account: member,
                payer_id: "riverbend".into(),
                policy: baton_vocab::ConsentPolicy::Regular,
                period_start: now.millis(),
                period_end: now.millis() + 86_400_000,
                given_at: now.millis(),
                channel: baton_vocab::ConsentChannel::Web,
                resource: json!({"resourceType": "Consent", "status": "active"}).to_string(),
                withdrawn_at: None,
                created_at: now.millis(),
                records_deleted: None,
                records_kept: None,
                records_shared: None,
                replaced_by: None,
            })
            .await
            .unwrap();
        let link = PayerLink {
            id: format!("l-{id}"),
            member_account: member,
            payer_id: "riverbend".into(),
            consent_id: Some(format!("c-{id}")),
            fhir_base: "http://127.0.0.1:9/fhir".into(),
            patient_id: Some("p1".into()),
            scope: "patient/*.rs".into(),
            include_sensitive: false,
            access_token: None,
            access_expires_at: None,
            refresh_token: None,
            id_token: None,
            state: baton_vocab::LinkState::Active,
            created_at: now.millis(),
            updated_at: now.millis(),
            source_sensitive: None,
            access: baton_vocab::LinkAccess::Member,
        };
        store.insert_link(&link).await.unwrap();
        store.enqueue_transfer(&id, &link, baton_vocab::TransferKind::Full, None, now).await.unwrap();
        if state == "failed" {
            // As the engine leaves a transfer whose previous plan never answered.
            let db = store.db();
            let sql = "UPDATE transfer SET state = 'failed', error = 'The previous plan did not answer.' WHERE id = $1";
            match db {
                baton_store::Db::Sqlite(pool) => sqlx::query(sql).bind(&id).execute(pool).await.map(|_| ()),
                baton_store::Db::Postgres(pool) => sqlx::query(sql).bind(&id).execute(pool).await.map(|_| ()),
            }
            .unwrap();
        }
        id
    }

    pub(crate) async fn audit(&self, action: &str) -> Vec<baton_store::AuditEvent> {
        self.store.search_audit(&AuditQuery { action: Some(action.into()), ..Default::default() }).await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_staff_route_checks_the_role_on_the_server() {
    let app = spawn().await;
    let transfer = app.transfer_for(app.maria, "queued").await;
    let maria = app.sign_in("maria").await;
    let ana = app.sign_in("ana").await;
    let sam = app.sign_in("sam").await;
    let alex = app.sign_in("alex").await;
    let member_page = format!("/staff/members/{}", app.maria.0);
    let records_page = format!("/staff/members/{}/records", app.maria.0);
    let transfer_page = format!("/staff/transfers/{transfer}");
    let staff_pages = [
        "/staff",
        "/staff/members",
        member_page.as_str(),
        records_page.as_str(),
        "/staff/roster",
        "/staff/transfers",
        transfer_page.as_str(),
        "/staff/payers",
    ];
    for page in staff_pages {
        let (status, _, location) = app.get(page, None).await;
        assert!(status.is_redirection(), "{page} as nobody: {status}");
        assert!(location.unwrap_or_default().starts_with("/sign-in"), "{page}");
        let (status, body, _) = app.get(page, Some(&maria)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page} as a member");
        assert!(!body.contains("Maria Garcia</h1>") && !body.contains("M-1</dd>"), "{page} leaks to a member");
        let (status, _, _) = app.get(page, Some(&sam)).await;
        assert_eq!(status, StatusCode::OK, "{page} as staff");
    }
    // Admin only.
    for page in ["/staff/audit", "/staff/audit.csv", "/staff/api-tokens", "/staff/payer-clients"] {
        assert_eq!(app.get(page, Some(&maria)).await.0, StatusCode::FORBIDDEN, "{page} as a member");
        assert_eq!(app.get(page, Some(&sam)).await.0, StatusCode::FORBIDDEN, "{page} as staff");
        assert_eq!(app.get(page, Some(&alex)).await.0, StatusCode::OK, "{page} as admin");
    }
    // Server functions, called directly (not only through the pages' forms).
    let id = app.maria.0.to_string();
    let functions: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("staff/home", vec![]),
        ("staff/members", vec![("q", ""), ("birth", ""), ("page", "0")]),
        ("staff/member", vec![("id", id.as_str())]),
        ("staff/invite", vec![("member", id.as_str())]),
        ("staff/transfers", vec![("state", ""), ("payer", ""), ("from", ""), ("to", ""), ("sort", ""), ("page", "0")]),
        ("staff/transfer", vec![("id", transfer.as_str())]),
        ("staff/transfer/retry", vec![("id", transfer.as_str())]),
        ("staff/transfer/cancel", vec![("id", transfer.as_str())]),
        ("staff/records", vec![("member", id.as_str()), ("kind", "claims")]),
        ("staff/record", vec![("resource_type", "Patient"), ("id", "nope")]),
        ("staff/roster/commit", vec![("id", "nope")]),
        ("staff/payers", vec![]),
        ("staff/payers/load", vec![("url", "http://127.0.0.1:9/brands.json")]),
        ("staff/payers/register", vec![("id", "x"), ("client_id", "c"), ("credential", ""), ("enabled", "yes")]),
        ("staff/payers/check", vec![("id", "x")]),
        ("staff/payers/enable", vec![("id", "x"), ("enabled", "off")]),
        ("staff/payers/endpoints", vec![("id", "x"), ("authorize_url", ""), ("token_url", ""), ("scopes", "")]),
        ("staff/member/reset", vec![("member", id.as_str()), ("reason", "r")]),
        ("staff/payer-clients", vec![]),
        ("staff/payer-clients/state", vec![("client_id", "x"), ("state", "suspended")]),
    ];
    for (endpoint, form) in &functions {
        assert_eq!(app.call(endpoint, form, None).await, StatusCode::UNAUTHORIZED, "{endpoint} as nobody");
        assert_eq!(app.call(endpoint, form, Some(&maria)).await, StatusCode::FORBIDDEN, "{endpoint} as a member");
    }
    assert_eq!(
        app.call("staff/record/reveal", &[("resource_type", "Patient"), ("id", "x"), ("reason", "r")], Some(&sam))
            .await,
        StatusCode::FORBIDDEN,
        "revealing needs the privacy role"
    );
    let filters = [
        ("filters[actor]", ""),
        ("filters[action]", ""),
        ("filters[member]", ""),
        ("filters[from]", ""),
        ("filters[to]", ""),
        ("page", "0"),
    ];
    assert_eq!(app.call("staff/audit", &filters, Some(&sam)).await, StatusCode::FORBIDDEN, "audit search needs admin");
    for (endpoint, form) in [
        ("staff/payers/register", vec![("id", "x"), ("client_id", "c"), ("credential", ""), ("enabled", "yes")]),
        ("staff/payers/enable", vec![("id", "x"), ("enabled", "off")]),
        ("staff/payers/endpoints", vec![("id", "x"), ("authorize_url", ""), ("token_url", ""), ("scopes", "")]),
    ] {
        assert_eq!(app.call(endpoint, &form, Some(&sam)).await, StatusCode::FORBIDDEN, "{endpoint} needs admin");
    }
    assert_eq!(
        client()
            .post(format!("{}/staff/roster", app.base))
            .header("origin", app.base.as_str())
            .header("cookie", &maria)
            .header("content-type", "multipart/form-data; boundary=x")
            .body("--x--\r\n")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN,
        "roster upload as a member"
    );
    // One member's transfer is not another's: it does not exist for them.
    let own = format!("/member/transfers/{transfer}");
    assert_eq!(app.get(&own, Some(&maria)).await.0, StatusCode::OK);
    assert_eq!(app.get(&own, Some(&ana)).await.0, StatusCode::NOT_FOUND, "another member's transfer");
    assert_eq!(app.call("member/retry", &[("transfer", transfer.as_str())], Some(&ana)).await, StatusCode::NOT_FOUND);
    assert_eq!(app.call("member/transfer", &[("id", transfer.as_str())], Some(&ana)).await, StatusCode::NOT_FOUND);
    // Nothing was changed by the refused calls.
    let stored = app.store.transfer(&transfer).await.unwrap().unwrap();
    assert_eq!(stored.state, baton_vocab::TransferState::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_and_actions_are_audited_and_exported() {
    let app = spawn().await;
    let failed = app.transfer_for(app.maria, "failed").await;
    let sam = app.sign_in("sam").await;
    let (status, body, _) = app.get(&format!("/staff/members/{}", app.maria.0), Some(&sam)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Maria Garcia") && body.contains("M-1"), "the member page shows the member");
    let viewed = app.audit("member.view").await;
    assert_eq!(viewed.len(), 1);
    assert_eq!(viewed[0].member_account, Some(app.maria.0));
    assert!(viewed[0].actor.starts_with("sam "), "{}", viewed[0].actor);

    let (status, body, _) = app.get(&format!("/staff/transfers/{failed}"), Some(&sam)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("The previous plan did not answer."), "errors in plain words");
    let (status, location) = app.post("staff/transfer/retry", &[("id", failed.as_str())], Some(&sam)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some(format!("/staff/transfers/{failed}").as_str()));
    let transfer = app.store.transfer(&failed).await.unwrap().unwrap();
    assert_eq!(transfer.state, baton_vocab::TransferState::Queued, "retried");
    let events = app.store.transfer_events(&failed).await.unwrap();
    assert!(events.iter().any(|e| e.kind == baton_vocab::EventKind::Retry && e.detail == "staff sam"), "{events:?}");
    let retried = app.audit("transfer.retry").await;
    assert_eq!((retried.len(), retried[0].detail.as_str()), (1, "done"));

    // Cancelling needs the confirmation step's form; it is recorded too.
    let (_, body, _) = app.get(&format!("/staff/transfers/{failed}?confirm=cancel"), Some(&sam)).await;
    assert!(body.contains("confirm-cancel-button"));
    app.post("staff/transfer/cancel", &[("id", failed.as_str())], Some(&sam)).await;
    assert_eq!(app.store.transfer(&failed).await.unwrap().unwrap().state, baton_vocab::TransferState::Cancelled);
    assert_eq!(app.audit("transfer.cancel").await.len(), 1);
    // A second cancel is refused, and that is recorded as such.
    let (_, location) = app.post("staff/transfer/cancel", &[("id", failed.as_str())], Some(&sam)).await;
    assert!(location.unwrap_or_default().ends_with("?problem=state"));
    assert!(app.audit("transfer.cancel").await[0].detail.starts_with("refused"));

    let alex = app.sign_in("alex").await;
    let (status, csv, _) = app.get("/staff/audit.csv?action=transfer.", Some(&alex)).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "time_utc,actor,actor_account,action,member_account,subject,detail");
    assert_eq!(lines.len(), 1 + 5, "two transfer views, retry, cancel, refused cancel: {csv}");
    assert!(lines.iter().skip(1).all(|l| l.contains(",transfer.")), "{csv}");
    assert_eq!(app.audit("audit.export").await.len(), 1, "the export itself is recorded");
    let (status, _, _) = app.get("/staff/audit.csv?from=yesterday", Some(&alex)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a malformed filter is a clear error");
}

fn multipart(file_name: &str, content: &str) -> (String, String) {
    let boundary = "baton-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n{content}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\r\n--{boundary}--\r\n"
    );
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_is_previewed_committed_once_and_invited_members_set_a_password() {
    let app = spawn().await;
    let sam = app.sign_in("sam").await;
    let roster = "member_id,given_name,family_name,birth_date,sex,email,coverage_start,plan\n\
        NP-7,Rosa,Diaz,1980-04-23,F,rosa@example.org,2026-01-01,Gold PPO\n\
        NP-8,Tom,,1975-11-02,M,,2026-01-01,Silver HMO\n";
    let upload = |content: String| {
        let (content_type, body) = multipart("roster.csv", &content);
        client()
            .post(format!("{}/staff/roster", app.base))
            .header("origin", app.base.as_str())
            .header("cookie", &sam)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let response = upload(roster.to_owned()).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/staff/roster/"), "{location}");
    let id = location.trim_start_matches("/staff/roster/").to_owned();
    let (status, preview, _) = app.get(&location, Some(&sam)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(preview.contains("family name is missing"), "the row's problem is shown");
    assert!(app.store.account_by_member_id("NP-7").await.unwrap().is_none(), "nothing written before commit");

    let (status, _) = app.post("staff/roster/commit", &[("id", id.as_str())], Some(&sam)).await;
    assert!(status.is_redirection());
    let rosa = app.store.account_by_member_id("NP-7").await.unwrap().expect("enrolled");
    assert!(app.store.account_by_member_id("NP-8").await.unwrap().is_none(), "rows with problems are left out");
    app.post("staff/roster/commit", &[("id", id.as_str())], Some(&sam)).await;
    assert_eq!(app.audit("roster.commit").await.len(), 1, "committed once");

    let (_, report, _) = app.get(&location, Some(&sam)).await;
    let link = report
        .split("value=\"")
        .filter_map(|s| s.split('"').next())
        .find(|v| v.contains("/welcome?token="))
        .expect("the invitation link is shown to staff")
        .replace("&amp;", "&");
    let path = link.trim_start_matches(&app.base).to_owned();
    let token = path.split("token=").nth(1).unwrap().to_owned();
    let (status, welcome, _) = app.get(&path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(welcome.contains("Rosa Diaz"), "the invitation page greets the member");
    let invited = app.store.account_by_member_id("NP-7").await.unwrap();
    let username = invited.map(|a| a.username).unwrap_or_default();
    assert!(
        !username.is_empty() && welcome.replace("<!>", "").contains(&format!("Your username is {username}.")),
        "and tells her the username she signs in with: {welcome}"
    );
    let accept = |password: &'static str, confirm: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            app.post("welcome/accept", &[("token", token.as_str()), ("password", password), ("confirm", confirm)], None)
                .await
        }
    };
    let (_, location) = accept("rosa's own password", "something else").await;
    assert!(location.unwrap_or_default().ends_with("problem=mismatch"));
    let (_, location) = accept("rosa's own password", "rosa's own password").await;
    assert_eq!(location.as_deref(), Some("/member"));
    let signed_in = app.services.accounts.sign_in("np-7", "rosa's own password", None, Timestamp::now()).await;
    assert_eq!(signed_in.unwrap().id, rosa.id);
    let (_, location) = accept("another password!", "another password!").await;
    assert!(location.unwrap_or_default().ends_with("problem=invalid"), "the link works once");

    // The same roster again: nothing new.
    let again = upload(roster.to_owned()).await.unwrap();
    let again = again.headers()["location"].to_str().unwrap().trim_start_matches("/staff/roster/").to_owned();
    app.post("staff/roster/commit", &[("id", again.as_str())], Some(&sam)).await;
    let last = app.audit("roster.commit").await;
    assert!(last[0].detail.starts_with("created 0, updated 0, unchanged 1"), "{}", last[0].detail);
    // An empty upload says what to do.
    let (content_type, body) = multipart("empty.csv", "");
    let empty = client()
        .post(format!("{}/staff/roster", app.base))
        .header("origin", app.base.as_str())
        .header("cookie", &sam)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(empty.headers()["location"], "/staff/roster?problem=empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_records_stay_hidden_until_a_privacy_officer_reveals_them() {
    let app = spawn().await;
    let base = app.services.local_base.clone();
    let condition = json!({
        "resourceType": "Condition", "id": "c-bh",
        "subject": {"reference": "Patient/p-maria"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1", "display": "Major depressive disorder, moderate"}]},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Depression<img src=x onerror=alert(1)><script>alert(2)</script></div>"}
    });
    baton_records::load(&app.store, [condition], &base, Some(app.maria)).await.unwrap();
    let stored = app.store.read_resource("Condition", "c-bh").await.unwrap().unwrap();
    assert!(stored.sensitive, "classified sensitive when stored");

    let sam = app.sign_in("sam").await;
    let (_, listed, _) = app.get(&format!("/staff/members/{}/records?kind=conditions", app.maria.0), Some(&sam)).await;
    assert!(listed.contains("Sensitive record (hidden)"));
    assert!(!listed.contains("depressive"), "a hidden record's content never reaches the page");
    let (_, page, _) = app.get("/staff/records/Condition/c-bh", Some(&sam)).await;
    assert!(!page.contains("depressive") && page.contains("needs-privacy"));

    let pat = app.sign_in("pat").await;
    let (_, page, _) = app.get("/staff/records/Condition/c-bh", Some(&pat)).await;
    assert!(!page.contains("depressive") && page.contains("reveal-form"));
    let (status, _) = app
        .post("staff/record/reveal", &[("resource_type", "Condition"), ("id", "c-bh"), ("reason", "")], Some(&pat))
        .await;
    assert!(!status.is_redirection() || app.audit("record.reveal").await.is_empty(), "a reason is required");
    assert!(app.audit("record.reveal").await.is_empty());
    app.post(
        "staff/record/reveal",
        &[("resource_type", "Condition"), ("id", "c-bh"), ("reason", "member asked for a copy")],
        Some(&pat),
    )
    .await;
    let revealed = app.audit("record.reveal").await;
    assert_eq!(revealed.len(), 1);
    assert_eq!(
        (revealed[0].member_account, revealed[0].detail.as_str()),
        (Some(app.maria.0), "member asked for a copy")
    );
    let (_, page, _) = app.get("/staff/records/Condition/c-bh", Some(&pat)).await;
    assert!(page.contains("Major depressive disorder"), "revealed for this officer");
    let narrative =
        page.split("id=\"narrative\"").nth(1).expect("the narrative is shown").split("</div>").next().unwrap();
    assert!(narrative.contains("Depression"));
    assert!(
        !narrative.contains("onerror") && !narrative.contains("<img") && !narrative.contains("alert(2)"),
        "{narrative}"
    );
    // Still hidden for anyone else.
    let (_, page, _) = app.get("/staff/records/Condition/c-bh", Some(&sam)).await;
    assert!(!page.contains("depressive"));
    assert!(app.audit("record.view").await.len() >= 4, "every view is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_api_answers_api_tokens_only_until_revoked() {
    let app = spawn().await;
    let base = app.services.local_base.clone();
    let maria_patient = baton_transfer::member_patient(&app.store, &base, app.maria).await.unwrap();
    let records = [
        json!({"resourceType": "Condition", "id": "c-1", "subject": {"reference": format!("Patient/{maria_patient}")},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9", "display": "Type 2 diabetes"}]}}),
        json!({"resourceType": "Condition", "id": "c-2", "subject": {"reference": format!("Patient/{maria_patient}")},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1", "display": "Depression"}]}}),
    ];
    baton_records::load(&app.store, records, &base, Some(app.maria)).await.unwrap();

    let sam = app.sign_in("sam").await;
    assert_eq!(app.call("staff/api-tokens/create", &[("name", "warehouse")], Some(&sam)).await, StatusCode::FORBIDDEN);
    let alex = app.sign_in("alex").await;
    let (status, location) = app.post("staff/api-tokens/create", &[("name", "claims warehouse")], Some(&alex)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/staff/api-tokens"));
    // What waits in the session for the page that shows it (read before that page).
    let sessions: Vec<Vec<u8>> = match app.store.db() {
        baton_store::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT data FROM tower_sessions").fetch_all(pool).await.unwrap()
        }
        baton_store::Db::Postgres(_) => unreachable!("the test app is on SQLite"),
    };
    let (_, page, _) = app.get("/staff/api-tokens", Some(&alex)).await;
    let token = page
        .split("id=\"new-token\"")
        .nth(1)
        .and_then(|s| s.split("value=\"").nth(1))
        .and_then(|s| s.split('"').next());
    let token = token.expect("the new token is shown once").to_owned();
    assert!(token.starts_with("baton_"));
    assert!(
        sessions.iter().all(|data| !data.windows(token.len()).any(|w| w == token.as_bytes())),
        "the new token never sits in the sessions table in clear"
    );
    let (_, again, _) = app.get("/staff/api-tokens", Some(&alex)).await;
    assert!(!again.contains(&token), "shown only once");
    let stored = app.store.api_tokens().await.unwrap();
    assert!(stored[0].token_hash != token && !stored[0].token_hash.contains(&token), "only a hash is kept");

    let api = |path: String, bearer: Option<String>| {
        let mut request = client().get(format!("{}/api/fhir/{path}", app.base));
        if let Some(bearer) = bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, metadata) = api("metadata".into(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    let (status, outcome) = api("Condition".into(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let (status, _) = api("Condition".into(), Some("baton_not-a-token".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, bundle) = api(format!("Condition?patient={maria_patient}"), Some(token.clone())).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    let ids: Vec<&str> =
        bundle["entry"].as_array().unwrap().iter().filter_map(|e| e["resource"]["id"].as_str()).collect();
    assert_eq!(ids, ["c-1"], "sensitive records are left out for this token");
    assert!(bundle["entry"][0]["fullUrl"].as_str().unwrap().contains("/api/fhir/Condition/c-1"));
    let (status, read) = api("Condition/c-1".into(), Some(token.clone())).await;
    assert_eq!((status, read["id"].as_str()), (StatusCode::OK, Some("c-1")));
    let (status, _) = api("Condition/c-2".into(), Some(token.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, everything) = api(format!("Patient/{maria_patient}/$everything"), Some(token.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(everything["entry"].as_array().unwrap().iter().any(|e| e["resource"]["id"] == "c-1"));
    let (status, _) = api("Patient/nobody/$everything".into(), Some(token.clone())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(app.audit("api.read").await.len() >= 4, "every API request is recorded");

    let id = app.store.api_tokens().await.unwrap()[0].id.clone();
    app.post("staff/api-tokens/revoke", &[("id", id.as_str())], Some(&alex)).await;
    let (status, _) = api("Condition/c-1".into(), Some(token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(app.audit("api_token.revoke").await.len(), 1);
}

/// Adds the named credential `shared-secret` staff may assign to a brands entry.
fn with_shared_secret(config: &mut Config) {
    config.credentials.insert(
        "shared-secret".into(),
        server::config::CredentialConfig {
            client_secret: Some("a registered secret".into()),
            private_key: None,
            private_key_file: None,
            private_key_alg: "RS384".into(),
            private_key_kid: None,
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_load_plans_from_a_brands_file_and_see_discovery_problems() {
    let app = spawn_with(|config| {
        with_shared_secret(config);
        // A configured plan whose server never answers.
        config.payers.push(server::demo::offline_plan_payer());
    })
    .await;
    let sam = app.sign_in("sam").await;
    // This Baton's own data-holder side publishes a brands file.
    let brands_url = format!("{}/brands.json", app.base);
    let (status, location) = app.post("staff/payers/load", &[("url", brands_url.as_str())], Some(&sam)).await;
    assert!(status.is_redirection());
    assert_eq!(location.as_deref(), Some("/staff/payers"));
    let entries = app.store.payer_entries().await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = entries[0].clone();
    assert_eq!(entry.fhir_base, format!("{}/fhir", app.base));
    assert!(app.services.journey.payers.get(&entry.id).is_none(), "not offered before registration");
    let (_, page, _) = app.get("/staff/payers", Some(&sam)).await;
    assert!(page.contains("data-state=\"no_registration\""), "the entry says what it needs: {page}");
    assert!(page.contains("Not offered yet"));

    // Refreshing sends the ETag: nothing changed.
    app.post("staff/payers/load", &[("url", brands_url.as_str())], Some(&sam)).await;
    let source = app.store.brand_source(&brands_url).await.unwrap().expect("recorded");
    assert_eq!(source.status, "not modified since the last load");
    assert!(source.etag.is_some());

    // Registering offers the plan to members: staff who are not admins see it, read only.
    let form =
        [("id", entry.id.as_str()), ("client_id", "cedar-valley"), ("credential", "shared-secret"), ("enabled", "yes")];
    assert_eq!(app.call("staff/payers/register", &form, Some(&sam)).await, StatusCode::FORBIDDEN);
    assert!(app.services.journey.payers.get(&entry.id).is_none(), "still not offered");
    let card = page.split(&format!("data-payer=\"{}\"", entry.id)).nth(1).expect("the entry is listed");
    let card = card.split("</li>").next().unwrap_or_default();
    assert!(!card.contains("name=\"client_id\""), "no registration form for staff: {card}");
    assert!(card.contains("Only an admin can change this plan"), "{card}");

    // An admin registers it and turns it on: members can pick it; the engine has its credential.
    let alex = app.sign_in("alex").await;
    let (status, _) = app.post("staff/payers/register", &form, Some(&alex)).await;
    assert!(status.is_redirection(), "{status}");
    let offered = app.services.journey.payers.get(&entry.id).expect("offered now");
    assert_eq!(offered.credentials.client_id, "cedar-valley");
    let bad = [("id", entry.id.as_str()), ("client_id", "x"), ("credential", "not-configured"), ("enabled", "yes")];
    assert_eq!(app.call("staff/payers/register", &bad, Some(&alex)).await, StatusCode::BAD_REQUEST);
    assert_eq!(app.audit("payers.register").await.len(), 1);
    let (_, page, _) = app.get("/staff/payers", Some(&sam)).await;
    let card = page.split(&format!("data-payer=\"{}\"", entry.id)).nth(1).expect("the entry is listed");
    let card = card.split("</li>").next().unwrap_or_default();
    assert!(card.contains("cedar-valley") && card.contains("shared-secret"), "staff see the registration: {card}");

    // Staff see why members cannot use a plan.
    app.post("staff/payers/check", &[("id", "lakeshore")], Some(&sam)).await;
    let (_, page, _) = app.get("/staff/payers", Some(&sam)).await;
    let card = page.split("data-payer=\"lakeshore\"").nth(1).expect("the configured plan is listed");
    assert!(card.contains("Members cannot use this plan now"), "the discovery problem is shown");
    let maria = app.sign_in("maria").await;
    assert_eq!(
        app.call("staff/payers/load", &[("url", brands_url.as_str())], Some(&maria)).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_switches_a_configured_plan_off_and_on() {
    let app = spawn_with(|config| config.payers.push(server::demo::offline_plan_payer())).await;
    let sam = app.sign_in("sam").await;
    let alex = app.sign_in("alex").await;
    let maria = app.sign_in("maria").await;
    let payers = &app.services.journey.payers;
    let off = [("id", "lakeshore"), ("enabled", "off")];
    assert!(payers.get("lakeshore").is_some(), "configuration offers it");
    let (_, page, _) = app.get("/member/bring?q=lakeshore", Some(&maria)).await;
    assert!(page.contains("Lakeshore Health"), "in the member's picker while on");

    // Staff who are not admins see the settings but cannot change them.
    assert_eq!(app.call("staff/payers/enable", &off, Some(&sam)).await, StatusCode::FORBIDDEN);
    assert!(payers.get("lakeshore").is_some(), "unchanged");
    let (_, page, _) = app.get("/staff/payers", Some(&sam)).await;
    let card = page.split("data-payer=\"lakeshore\"").nth(1).expect("listed");
    assert!(card.contains("Configuration: offered"), "{card}");
    assert!(!card.contains("switch-lakeshore"), "no switch for staff");

    // Off, by an admin's plain form post.
    let (status, location) = app.post("staff/payers/enable", &off, Some(&alex)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/staff/payers"));
    assert!(payers.get("lakeshore").is_none(), "not offered to members");
    assert!(payers.search("lakeshore").is_empty(), "not searchable");
    let stored = app.store.payer_enabled_overrides().await.unwrap();
    assert_eq!((stored[0].payer_id.as_str(), stored[0].enabled), ("lakeshore", false), "kept in the database");
    let (_, page, _) = app.get("/staff/payers", Some(&alex)).await;
    let card = page.split("data-payer=\"lakeshore\"").nth(1).expect("still listed for staff");
    assert!(card.starts_with(" data-state=\"disabled\""), "{card}");
    assert!(card.contains("Configuration: offered") && card.contains("switched off by an admin"), "both shown");
    assert!(card.contains("keep running to the end"), "what happens to running transfers is said");
    assert!(card.contains("id=\"switch-lakeshore-off\"") && card.contains("action=\"/api/staff/payers/enable\""));
    // Members no longer see it, and cannot start with it.
    let (_, page, _) = app.get("/member/bring?q=lakeshore", Some(&maria)).await;
    assert!(!page.contains("Lakeshore Health"), "not in the member's picker");
    let (status, location) =
        app.post("member/start_authorization", &[("payer", "lakeshore"), ("sensitive", "exclude")], Some(&maria)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/member/bring?problem=not_offered"));
    let (_, page, _) = app.get("/member/bring?problem=not_offered", Some(&maria)).await;
    assert!(page.contains("That plan is not offered at the moment"));
    let events = app.audit("payers.enable").await;
    assert_eq!(events.len(), 1);
    assert!(events[0].actor.starts_with("alex "), "{}", events[0].actor);
    assert_eq!(events[0].subject, "payer lakeshore");
    assert_eq!(events[0].detail, "enabled=off (was on; configuration says on)");

    // On again, then back to configuration.
    app.post("staff/payers/enable", &[("id", "lakeshore"), ("enabled", "on")], Some(&alex)).await;
    assert!(payers.get("lakeshore").is_some());
    app.post("staff/payers/enable", &[("id", "lakeshore"), ("enabled", "config")], Some(&alex)).await;
    assert!(payers.get("lakeshore").is_some());
    assert!(app.store.payer_enabled_overrides().await.unwrap().is_empty(), "configuration decides");
    assert_eq!(app.audit("payers.enable").await.len(), 3, "every change is recorded");

    // Refused input says what is wrong and changes nothing.
    let junk = [("id", "lakeshore"), ("enabled", "maybe")];
    assert_eq!(app.call("staff/payers/enable", &junk, Some(&alex)).await, StatusCode::BAD_REQUEST);
    let (status, location) = app.post("staff/payers/enable", &junk, Some(&alex)).await;
    assert!(status.is_redirection());
    let location = location.unwrap_or_default();
    assert_eq!(location, "/staff/payers?problem=invalid_enabled&payer=lakeshore");
    let (_, page, _) = app.get(&location, Some(&alex)).await;
    let alert = page.split("id=\"payers-problem\"").nth(1).expect("an alert");
    assert!(alert.contains("lakeshore") && alert.contains("choose on, off, or as configuration says"), "{alert}");
    assert_eq!(
        app.call("staff/payers/enable", &[("id", "nobody"), ("enabled", "off")], Some(&alex)).await,
        StatusCode::NOT_FOUND
    );
    assert!(payers.get("lakeshore").is_some());
    assert_eq!(app.audit("payers.enable").await.len(), 3, "refusals change nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_pins_a_brands_entrys_endpoints_and_scopes() {
    let app = spawn_with(with_shared_secret).await;
    let sam = app.sign_in("sam").await;
    let alex = app.sign_in("alex").await;
    let brands_url = format!("{}/brands.json", app.base);
    app.post("staff/payers/load", &[("url", brands_url.as_str())], Some(&sam)).await;
    let id = app.store.payer_entries().await.unwrap()[0].id.clone();
    let form =
        [("id", id.as_str()), ("client_id", "cedar-valley"), ("credential", "shared-secret"), ("enabled", "yes")];
    app.post("staff/payers/register", &form, Some(&alex)).await;
    assert!(app.services.journey.payers.get(&id).is_some());
    let (_, page, _) = app.get("/staff/payers", Some(&sam)).await;
    assert!(!page.contains(&format!("id=\"pin-{id}-authorize\"")), "the form is for admins");
    let (_, page, _) = app.get("/staff/payers", Some(&alex)).await;
    assert!(page.contains(&format!("<label for=\"pin-{id}-authorize\">Authorization endpoint</label>")), "labelled");

    let token_url = format!("{}/oauth/token", app.base);
    let pin = |authorize: &str, token: &str, scopes: &str| {
        vec![
            ("id".to_owned(), id.clone()),
            ("authorize_url".to_owned(), authorize.to_owned()),
            ("token_url".to_owned(), token.to_owned()),
            ("scopes".to_owned(), scopes.to_owned()),
        ]
    };
    fn as_refs(form: &[(String, String)]) -> Vec<(&str, &str)> {
        form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }
    let good = pin("https://auth.riverbend.example/authorize", &token_url, "launch/patient openid patient/*.read");
    assert_eq!(app.call("staff/payers/endpoints", &as_refs(&good), Some(&sam)).await, StatusCode::FORBIDDEN);

    // Refused input: a clear message, and nothing stored.
    for (form, field, words) in [
        (
            pin("http://auth.riverbend.example/authorize", "", ""),
            "authorize_url",
            "the authorization endpoint must be a full https address",
        ),
        (pin("", "oauth/token", ""), "token_url", "the token endpoint must be a full https address"),
        (pin("", "", "patient/*.read; openid"), "scopes", "the scopes must be SMART scopes separated by spaces"),
        (pin("", "", "patient/*.write"), "scopes", "Scopes that change data"),
    ] {
        let form = as_refs(&form);
        assert_eq!(app.call("staff/payers/endpoints", &form, Some(&alex)).await, StatusCode::BAD_REQUEST, "{field}");
        let (status, location) = app.post("staff/payers/endpoints", &form, Some(&alex)).await;
        assert!(status.is_redirection(), "{status}");
        let location = location.unwrap_or_default();
        assert_eq!(location, format!("/staff/payers?problem=invalid_{field}&payer={id}"));
        let (_, page, _) = app.get(&location, Some(&alex)).await;
        assert!(page.contains(words), "{field}: the page says why");
    }
    let entry = app.store.payer_entries().await.unwrap().remove(0);
    assert_eq!((entry.authorize_url, entry.token_url, entry.scopes), (None, None, None));

    let (status, location) = app.post("staff/payers/endpoints", &as_refs(&good), Some(&alex)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/staff/payers"));
    let payer = app.services.journey.payers.get(&id).expect("still offered");
    assert_eq!(payer.authorize_url.map(String::from).as_deref(), Some("https://auth.riverbend.example/authorize"));
    assert_eq!(payer.token_url.map(String::from).as_deref(), Some(token_url.as_str()));
    assert_eq!(payer.scopes.as_deref(), Some("launch/patient openid patient/*.read"));
    assert_eq!(payer.credentials.token_url.as_deref(), Some(token_url.as_str()), "the engine uses it too");
    let (_, page, _) = app.get("/staff/payers", Some(&sam)).await;
    assert!(page.contains("https://auth.riverbend.example/authorize"), "shown to staff");
    let events = app.audit("payers.endpoints").await;
    assert_eq!(events.len(), 1, "refusals are not changes");
    assert_eq!(
        events[0].detail,
        format!(
            "authorize_url=https://auth.riverbend.example/authorize token_url={token_url} scopes=launch/patient openid patient/*.read"
        )
    );

    // A brands refresh (the file changed or not) keeps them.
    app.post("staff/payers/load", &[("url", brands_url.as_str())], Some(&sam)).await;
    assert!(app.services.journey.payers.get(&id).and_then(|p| p.authorize_url).is_some());
    // Not a brands entry: nothing to pin.
    let other = [("id", "brand-nobody"), ("authorize_url", ""), ("token_url", ""), ("scopes", "")];
    assert_eq!(app.call("staff/payers/endpoints", &other, Some(&alex)).await, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_90_days_of_coverage_the_consent_page_says_the_time_has_ended() {
    let app = spawn_with(|config| config.payers.push(server::demo::offline_plan_payer())).await;
    let started = time::OffsetDateTime::now_utc().date() - time::Duration::days(120);
    let late_id = app
        .services
        .accounts
        .create_member(baton_accounts::NewMember {
            birth_date: date!(1970 - 01 - 01),
            coverage_start: started,
            ..crate::support::member("late", "Late Joiner", "M-9")
        })
        .await
        .unwrap()
        .id;
    let late = app.sign_in("late").await;
    let (status, page, _) = app.get("/member/bring/lakeshore", Some(&late)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("id=\"consent-closed\"") && page.contains("The time to bring your records has ended"),
        "{page}"
    );
    assert!(!page.contains("/api/member/start_authorization"), "no form to give the permission");
    // A form posted anyway does not reach the previous plan.
    let (status, location) =
        app.post("member/start_authorization", &[("payer", "lakeshore"), ("sensitive", "exclude")], Some(&late)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/member/bring/lakeshore"));
    assert!(app.store.consents_of(late_id).await.unwrap().is_empty());

    // Maria's coverage started today: she is asked.
    let maria = app.sign_in("maria").await;
    let (_, page, _) = app.get("/member/bring/lakeshore", Some(&maria)).await;
    assert!(!page.contains("consent-closed") && page.contains("/api/member/start_authorization"));
}

/// The next Server-Sent Event's data from `response`, as JSON (`None` when the stream ended).
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> Option<serde_json::Value> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim_start).collect();
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            return Some(serde_json::from_str(&data.join("\n")).expect("each event is the page's JSON view"));
        }
        let chunk = response.chunk().await.expect("the stream reads")?;
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_transfer_progress_streams_to_them_alone_until_it_ends() {
    let app = spawn().await;
    let id = app.transfer_for(app.maria, "queued").await;
    let path = format!("/member/transfers/{id}/live");
    assert_eq!(app.get(&path, None).await.0, StatusCode::UNAUTHORIZED);
    let ana = app.sign_in("ana").await;
    assert_eq!(app.get(&path, Some(&ana)).await.0, StatusCode::NOT_FOUND, "another member's transfer does not exist");

    let maria = app.sign_in("maria").await;
    let mut response = client().get(format!("{}{path}", app.base)).header("cookie", &maria).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut buffer = String::new();
    let first = next_event(&mut response, &mut buffer).await.expect("the transfer as it is now");
    assert_eq!(
        (first["id"].as_str(), first["state"].as_str(), first["active"].as_bool()),
        (Some(id.as_str()), Some("queued"), Some(true))
    );

    // A worker takes the transfer and ends it: the stream follows, and ends after the end.
    let store = &app.store;
    let now = Timestamp::now();
    store.claim_transfer("w", Timestamp::from_millis(now.millis() + 60_000), now).await.unwrap().unwrap();
    store.finish_transfer(&id, "w", baton_vocab::TransferState::Completed, None, Timestamp::now()).await.unwrap();
    let mut seen = vec![first];
    while let Some(view) = next_event(&mut response, &mut buffer).await {
        seen.push(view);
    }
    let states: Vec<&str> = seen.iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"completed"), "{states:?}");
    assert_eq!(seen.last().unwrap()["active"], false);
    assert!(seen[..seen.len() - 1].iter().all(|v| v["active"] == true), "{states:?}");
    let distinct: std::collections::HashSet<String> = seen.iter().map(|v| v.to_string()).collect();
    assert_eq!(distinct.len(), seen.len(), "a view is sent only when it changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hundreds_of_plans_the_picker_lists_the_first_fifty_and_search_narrows() {
    let app = spawn_with(with_shared_secret).await;
    let store = &app.store;
    let source = "https://brands.example/brands.json";
    let entries: Vec<PayerEntry> = (0..120)
        .map(|n| PayerEntry {
            id: format!("plan-{n:03}"),
            name: format!("Plan {n:03}"),
            aliases: String::new(),
            states: if n == 77 { "WY".into() } else { "IL".into() },
            logo_url: Some(format!("https://brands.example/logo-{n}.svg")),
            fhir_base: format!("https://plan-{n:03}.example/fhir"),
            source_url: source.into(),
            client_id: None,
            credential: None,
            enabled: false,
            updated_at: 1,
            authorize_url: None,
            token_url: None,
            scopes: None,
            withdrawn_at: None,
        })
        .collect();
    store.apply_payer_entries(source, &entries, Timestamp::now()).await.unwrap();
    for entry in &entries {
        store
            .set_payer_registration(&entry.id, Some("cedar"), Some("shared-secret"), true, Timestamp::now())
            .await
            .unwrap();
    }
    app.services.journey.payers.reload(store).await.unwrap();
    let total = app.services.journey.payers.search("").len();
    assert!(total >= 120, "{total}");

    let maria = app.sign_in("maria").await;
    let (status, page, _) = app.get("/member/bring", Some(&maria)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("class=\"payer\"").count(), 50, "the first fifty");
    // (Leptos marks where each number was put in with `<!>`.)
    let more = page.split("id=\"more-plans\"").nth(1).unwrap_or_default().replace("<!>", "");
    let expected = format!("Showing the first 50 of {total} plans");
    assert!(more.contains(&expected), "and how many there are: {}", &more[..more.len().min(300)]);
    assert!(page.contains("loading=\"lazy\""), "logos load as they scroll into view");
    // A state narrows it to one.
    let (_, page, _) = app.get("/member/bring?q=wy", Some(&maria)).await;
    assert_eq!(page.matches("class=\"payer\"").count(), 1);
    assert!(page.contains("Plan 077") && !page.contains("id=\"more-plans\""));
}

/// CMS-0057-F: the roster carries a new member's previous coverage and their opt-in at
/// enrollment; committing it records both (the opt-in as a Consent given at enrollment), and
/// says on each line what became of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_records_previous_coverage_and_the_opt_in_given_at_enrollment() {
    let app = spawn_with(|config| {
        let old = Config { public_url: Some("http://127.0.0.1:9/".parse().unwrap()), ..Config::default() };
        config.payers.push(server::demo::old_plan_payer(&old, "unused-shared-secret-here".into()));
    })
    .await;
    let sam = app.sign_in("sam").await;
    let roster = "member_id,given_name,family_name,birth_date,sex,email,coverage_start,plan,previous_payer,previous_member_id,p2p_opt_in,p2p_sensitive\n\
        NP-9,Rosa,Diaz,1980-04-23,F,,2026-11-01,Gold PPO,riverbend,RB-77,yes,no\n\
        NP-10,Tom,Nguyen,1975-11-02,M,,2026-11-01,Gold PPO,nowhere,NW-1,yes,\n\
        NP-11,Ana,Ruiz,1990-01-02,F,,2026-11-01,Gold PPO,riverbend,,maybe,\n";
    let location = upload_roster(&app, &sam, "roster.csv", roster).await;
    let (_, preview, _) = app.get(&location, Some(&sam)).await;
    assert!(preview.contains("previous member id is missing"), "a half coverage is a problem of its row");
    let id = location.trim_start_matches("/staff/roster/").to_owned();
    app.post("staff/roster/commit", &[("id", id.as_str())], Some(&sam)).await;

    let rosa = app.store.account_by_member_id("NP-9").await.unwrap().expect("enrolled");
    let coverages = app.store.previous_coverages(rosa.id).await.unwrap();
    assert_eq!(coverages.len(), 1);
    let coverage = &coverages[0];
    assert_eq!((coverage.payer_id.as_str(), coverage.member_id.as_str()), ("riverbend", "RB-77"));
    assert_eq!(coverage.opt_in, baton_vocab::OptIn::In);
    assert_eq!(coverage.opt_in_channel, Some(baton_vocab::ConsentChannel::Enrollment));
    assert!(coverage.next_request_at.is_some(), "due at once: asked well within the week");
    let consent = app.store.consent(coverage.consent_id.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(consent.policy, baton_vocab::ConsentPolicy::Regular);
    assert_eq!(consent.channel, baton_vocab::ConsentChannel::Enrollment);

    let tom = app.store.account_by_member_id("NP-10").await.unwrap().expect("enrolled all the same");
    assert!(app.store.previous_coverages(tom.id).await.unwrap().is_empty());
    let (_, report, _) = app.get(&location, Some(&sam)).await;
    assert!(report.contains("opted in: records will be asked for"), "the line says what became of it");
    assert!(
        report.contains("no payer \"nowhere\" in the directory") || report.contains("no payer &quot;nowhere&quot;"),
        "{report}"
    );
}

/// The same from a FHIR roster: the member's second Coverage is their previous one, its payer
/// named by NAIC code, and a Consent about them is the opt-in they gave at enrollment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_roster_carries_the_previous_coverage_and_the_opt_in_as_a_consent() {
    let app = spawn_with(|config| {
        let old = Config { public_url: Some("http://127.0.0.1:9/".parse().unwrap()), ..Config::default() };
        config.payers.push(server::demo::old_plan_payer(&old, "unused-shared-secret-here".into()));
    })
    .await;
    let sam = app.sign_in("sam").await;
    let today = time::OffsetDateTime::now_utc().date();
    let start = baton_vocab::day::format(today.replace_day(1).unwrap());
    let roster = serde_json::json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ada"]}],
                "gender": "female", "birthDate": "1988-07-14"}},
            {"resource": {"resourceType": "Coverage", "status": "cancelled", "subscriberId": "RB-88",
                "beneficiary": {"reference": "urn:uuid:p1"}, "payor": [{"identifier": {"value": "90001"}}],
                "period": {"start": "2019-01-01", "end": "2025-12-31"}}},
            {"resource": {"resourceType": "Coverage", "status": "active", "subscriberId": "NP-21",
                "beneficiary": {"reference": "urn:uuid:p1"}, "period": {"start": start},
                "class": [{"type": {"coding": [{"code": "plan"}]}, "value": "G1", "name": "Gold PPO"}]}},
            {"resource": {"resourceType": "Consent", "status": "active", "dateTime": start,
                "patient": {"reference": "urn:uuid:p1"},
                "policy": [{"uri": "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"}]}}
        ]
    });
    let location = upload_roster(&app, &sam, "roster.json", &roster.to_string()).await;
    let id = location.trim_start_matches("/staff/roster/").to_owned();
    app.post("staff/roster/commit", &[("id", id.as_str())], Some(&sam)).await;

    let ada = app.store.account_by_member_id("NP-21").await.unwrap().expect("enrolled once, by this plan's Coverage");
    let coverages = app.store.previous_coverages(ada.id).await.unwrap();
    assert_eq!(coverages.len(), 1, "{coverages:?}");
    let coverage = &coverages[0];
    assert_eq!((coverage.payer_id.as_str(), coverage.member_id.as_str()), ("riverbend", "RB-88"), "found by NAIC code");
    assert!(!coverage.concurrent);
    assert_eq!(coverage.opt_in, baton_vocab::OptIn::In);
    let consent = app.store.consent(coverage.consent_id.as_deref().unwrap()).await.unwrap().unwrap();
    assert_eq!(consent.policy, baton_vocab::ConsentPolicy::Regular);
    assert!(app.store.account_by_member_id("RB-88").await.unwrap().is_none(), "the old card enrols no one");
}

/// Uploads a roster file as staff; where its preview is.
async fn upload_roster(app: &TestApp, cookie: &str, name: &str, content: &str) -> String {
    let (content_type, body) = multipart(name, content);
    let response = client()
        .post(format!("{}/staff/roster", app.base))
        .header("origin", app.base.as_str())
        .header("cookie", cookie)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A transfer whose permission the member withdrew says so in the staff list, and staff can list
/// just those: it ran and completed, but the permission it ran under has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_whose_permission_was_withdrawn_are_marked_and_can_be_listed() {
    let app = spawn().await;
    let kept = app.transfer_for(app.maria, "completed").await;
    let withdrawn = app.transfer_for(app.maria, "completed").await;
    let link = app.store.transfer(&withdrawn).await.unwrap().unwrap().link_id;
    app.store.set_link_state(&link, baton_vocab::LinkState::Revoked, Timestamp::now()).await.unwrap();
    let sam = app.sign_in("sam").await;
    let (_, all, _) = app.get("/staff/transfers", Some(&sam)).await;
    assert!(all.contains(&kept) && all.contains(&withdrawn));
    assert_eq!(all.matches("data-withdrawn=\"true\"").count(), 1, "only the withdrawn one is marked");
    let (status, only, _) = app.get("/staff/transfers?state=withdrawn", Some(&sam)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(only.contains(&withdrawn) && !only.contains(&kept), "{only}");
}
