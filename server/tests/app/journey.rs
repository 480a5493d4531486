//! The member journey over HTTP, as a browser without JavaScript would drive it: a real Baton
//! (the new plan) and a real data holder (the previous plan) on loopback ports. The member
//! consents, is sent to the previous plan, signs in and approves there, comes back through the
//! callback, and the transfer runs. Then: no token the previous plan issued appears in any
//! response body, header or cookie the new plan sent, nor in any log line it wrote.

use baton_vocab::TransferState;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use baton_testbed::{CLIENT_ID, CLIENT_SECRET, PreviousPlanSetup, previous_plan};
use baton_transfer::TokenCipher;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use secrecy::ExposeSecret;
use server::config::Config;
use server::startup::Application;
use url::Url;

use crate::support::PASSWORD;
/// The redirect URI the testbed registers for the new plan.
const NEW_PLAN_PUBLIC: &str = "https://new-plan.example/";

/// Every log line of this test process.
pub(crate) fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .init();
        logs
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the new plan sent back, for the token scan.
#[derive(Default)]
struct Seen(Vec<String>);

/// A cookie-keeping client for one site (cookies set by hand: `Secure` ones too, on loopback).
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self { http, base: base.trim_end_matches('/').to_owned(), cookies: vec![] }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn keep(
        &mut self,
        response: reqwest::Response,
        seen: &mut Seen,
    ) -> (reqwest::StatusCode, Option<String>, String) {
        let status = response.status();
        for (name, value) in response.headers() {
            seen.0.push(format!("{name}: {}", value.to_str().unwrap_or_default()));
        }
        for cookie in response.headers().get_all(SET_COOKIE) {
            let pair = cookie.to_str().unwrap().split(';').next().unwrap().to_owned();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            self.cookies.push((name.to_owned(), value.to_owned()));
        }
        let location = response.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        seen.0.push(body.clone());
        (status, location, body)
    }

    async fn get(&mut self, path_or_url: &str, seen: &mut Seen) -> (reqwest::StatusCode, Option<String>, String) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        let response = self.http.get(url).header(COOKIE, self.cookie_header()).send().await.unwrap();
        self.keep(response, seen).await
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        seen: &mut Seen,
    ) -> (reqwest::StatusCode, Option<String>, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .header("accept", "text/html")
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(response, seen).await
    }
}

/// The value of the hidden `request` field of the previous plan's forms.
fn hidden_request(html: &str) -> String {
    let start = html.find("name=\"request\" value=\"").expect("a request field") + "name=\"request\" value=\"".len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&#x2B;", "+").replace("&#x2F;", "/").replace("&#x3D;", "=").replace("&amp;", "&")
}

struct World {
    new_plan: String,
    old_plan: String,
    store: baton_store::Store,
    token_key: [u8; 32],
    _dirs: Vec<tempfile::TempDir>,
}

async fn world() -> World {
    captured_logs();
    // The previous plan: a data holder with one synthetic member, on its own port.
    let old_dir = tempfile::tempdir().unwrap();
    let old_store = baton_store::Store::connect(
        &format!("sqlite://{}", old_dir.path().join("old.db").display()),
        &baton_store::ConnectOptions::default(),
    )
    .await
    .unwrap();
    old_store.migrate().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old_plan = format!("http://{}/", listener.local_addr().unwrap());
    let member = baton_synth::demo_members("rb").into_iter().next().unwrap();
    let previous =
        previous_plan(old_store, PreviousPlanSetup::new(Url::parse(&old_plan).unwrap(), member, 0)).await.unwrap();
    let router = previous.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    // The new plan, registered at the previous plan as the testbed's client.
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        public_url: Some(Url::parse(NEW_PLAN_PUBLIC).unwrap()),
        cookie_secure: Some(false),
        ..crate::support::config(dir.path())
    };
    config.transfer.history_years = 10;
    // The demo's directory entry for its old plan, pointed at this holder and its client.
    let holder_config = Config { public_url: Some(Url::parse(&old_plan).unwrap()), ..Config::default() };
    let mut payer = server::demo::old_plan_payer(&holder_config, CLIENT_SECRET.into());
    payer.fhir_base = Url::parse(&previous.authorization.fhir_base).unwrap();
    payer.client_id = CLIENT_ID.into();
    config.payers.push(payer);
    let secrets = server::secrets::Secrets::load(&config).unwrap();
    let app = Application::build(config).await.expect("build the app");
    let new_plan = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    app.services().accounts.create_member(crate::support::member("maria", "Maria Garcia", "CVH-1")).await.unwrap();
    tokio::spawn(app.run_until_stopped());
    World { new_plan, old_plan, store, token_key: *secrets.token_key.expose_secret(), _dirs: vec![old_dir, dir] }
}

/// Signs the member in at the new plan, consents, and follows the redirect to the previous
/// plan, signs in and approves there; returns where the previous plan sends the browser back.
async fn consent_and_approve(world: &World, me: &mut Browser, seen: &mut Seen) -> Url {
    let (_, location, _) =
        me.post("/api/sign_in", &[("username", "maria"), ("password", PASSWORD), ("next", "/member")], seen).await;
    assert_eq!(location.as_deref(), Some("/member"));
    let (_, location, _) =
        me.post("/api/member/start_authorization", &[("payer", "riverbend"), ("sensitive", "exclude")], seen).await;
    let authorize = location.expect("a redirect to the previous plan");
    assert!(authorize.starts_with(&world.old_plan), "{authorize}");

    let mut there = Browser::new(&world.old_plan);
    let mut ignore = Seen::default();
    let (_, _, html) = there.get(&authorize, &mut ignore).await;
    let request = hidden_request(&html);
    let (_, location, _) = there
        .post(
            "/oauth/authorize/sign-in",
            &[("request", &request), ("username", "member"), ("password", "a member password")],
            &mut ignore,
        )
        .await;
    let (_, _, html) = there.get(&location.expect("on to the consent screen"), &mut ignore).await;
    let request = hidden_request(&html);
    let (_, location, _) = there
        .post(
            "/oauth/authorize/decision",
            &[("request", &request), ("sensitive", "include"), ("decision", "approve")],
            &mut ignore,
        )
        .await;
    let back = Url::parse(&location.expect("back to the new plan")).unwrap();
    assert!(back.as_str().starts_with(&format!("{NEW_PLAN_PUBLIC}oauth/callback?")), "{back}");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_authorizes_and_no_token_ever_leaves_the_server() {
    let world = world().await;
    let mut me = Browser::new(&world.new_plan);
    let mut seen = Seen::default();
    let back = consent_and_approve(&world, &mut me, &mut seen).await;

    let callback = format!("{}?{}", back.path(), back.query().unwrap());
    let (_, location, _) = me.get(&callback, &mut seen).await;
    let progress = location.expect("to the progress page");
    assert!(progress.starts_with("/member/transfers/"), "{progress}");
    let transfer_id = progress.trim_start_matches("/member/transfers/").to_owned();

    // The transfer runs to the end; the progress page shows it.
    let store = &world.store;
    let mut state = TransferState::Queued;
    for _ in 0..300 {
        state = store.transfer(&transfer_id).await.unwrap().unwrap().state;
        if state.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, TransferState::Completed);
    let (status, _, html) = me.get(&progress, &mut seen).await;
    assert_eq!(status, 200);
    assert!(html.contains("Done. Your records are here."), "{html}");
    let (_, _, html) = me.get("/member", &mut seen).await;
    assert!(html.contains("Riverbend Health Plan") && html.contains("records arrived"), "{html}");
    // A replayed callback is refused: the pending authorization was used.
    let (_, location, _) = me.get(&callback, &mut seen).await;
    assert_eq!(location.as_deref(), Some("/member/bring?problem=state&payer="));

    // The tokens the previous plan issued, as the new plan holds them (sealed).
    let transfer = store.transfer(&transfer_id).await.unwrap().unwrap();
    let link = store.link(&transfer.link_id).await.unwrap().unwrap();
    let cipher = TokenCipher::new(&world.token_key);
    let mut tokens = vec![];
    let sealed = [("access", &link.access_token), ("refresh", &link.refresh_token), ("id", &link.id_token)];
    for (part, sealed) in sealed.into_iter().filter_map(|(part, sealed)| Some((part, sealed.as_ref()?))) {
        let token = cipher.open_for(sealed, &baton_store::PayerLink::token_place(&link.id, part)).unwrap();
        assert!(!sealed.contains(&token));
        tokens.push(token);
    }
    assert!(tokens.len() >= 2, "access and refresh tokens were issued");
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();

    let logs = String::from_utf8(captured_logs().lock().unwrap().clone()).unwrap();
    assert!(logs.contains("previous plan linked"), "the scan reads the server's logs");
    for token in tokens.iter().chain([&code]) {
        assert!(token.len() >= 20);
        assert!(!logs.contains(token.as_str()), "a token or code in the logs");
        for text in &seen.0 {
            assert!(!text.contains(token.as_str()), "a token in a response: {text}");
        }
    }
    for (name, value) in &me.cookies {
        assert!(tokens.iter().all(|t| !value.contains(t.as_str())), "a token in cookie {name}");
    }
}

/// Issue 22, defect 5: a second tab started while the first was at the old plan leaves the
/// first usable — each comes back to a transfer of its own, not to "start again".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_each_come_back_to_a_transfer() {
    let world = world().await;
    let mut me = Browser::new(&world.new_plan);
    let mut seen = Seen::default();
    let first = consent_and_approve(&world, &mut me, &mut seen).await;
    let second = consent_and_approve(&world, &mut me, &mut seen).await;
    for back in [first, second] {
        let (_, location, _) = me.get(&format!("{}?{}", back.path(), back.query().unwrap()), &mut seen).await;
        assert!(location.as_deref().is_some_and(|l| l.starts_with("/member/transfers/")), "{location:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_state_makes_no_link() {
    let world = world().await;
    let mut me = Browser::new(&world.new_plan);
    let mut seen = Seen::default();
    let back = consent_and_approve(&world, &mut me, &mut seen).await;
    let mut tampered = back.clone();
    let pairs: Vec<(String, String)> = back
        .query_pairs()
        .map(|(k, v)| if k == "state" { (k.into_owned(), format!("{v}x")) } else { (k.into_owned(), v.into_owned()) })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let (_, location, _) = me.get(&format!("{}?{}", tampered.path(), tampered.query().unwrap()), &mut seen).await;
    assert_eq!(location.as_deref(), Some("/member/bring?problem=state&payer=riverbend"));
    let maria = world.store.account_by_username("maria").await.unwrap().unwrap();
    assert!(world.store.links_of(maria.id).await.unwrap().is_empty());
}
