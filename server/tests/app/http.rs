//! Black-box HTTP tests: a real Baton on a free port with its own SQLite database.

use baton_accounts::{NewPassword, NewStaff, Role, Roles, Username};
use baton_store::Db;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue};
use server::startup::Application;

use crate::support::PASSWORD;

struct TestApp {
    base: String,
    store: baton_store::Store,
    _dir: tempfile::TempDir,
}

async fn spawn() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::config(dir.path());
    let app = Application::build(config).await.expect("build the app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let services = app.services().clone();
    let store = app.store().clone();
    services.accounts.create_member(crate::support::member("maria", "Maria Garcia", "M-1")).await.unwrap();
    services
        .accounts
        .create_staff(NewStaff {
            username: Username::parse("sam").unwrap(),
            display_name: "Sam Rivera".into(),
            password: NewPassword::parse(PASSWORD).unwrap(),
            roles: Roles::of([Role::Staff]),
        })
        .await
        .unwrap();
    tokio::spawn(app.run_until_stopped());
    TestApp { base, store, _dir: dir }
}

use crate::support::client;

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("baton_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

impl TestApp {
    /// Signs in like a plain HTML form (no JavaScript) would.
    async fn sign_in(&self, username: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = client()
            .post(format!("{}/api/sign_in", self.base))
            .header("accept", "text/html")
            .header("origin", self.base.as_str())
            .header("referer", format!("{}/sign-in", self.base))
            .form(&[("username", username), ("password", PASSWORD), ("next", "")]);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    async fn call(&self, endpoint: &str, cookie: Option<&str>) -> (StatusCode, String) {
        let mut request = client().post(format!("{}/api/{endpoint}", self.base)).header("origin", self.base.as_str());
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn session_rows(&self) -> i64 {
        match self.store.db() {
            Db::Sqlite(pool) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions").fetch_one(pool).await.unwrap()
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions").fetch_one(pool).await.unwrap()
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let app = spawn().await;
    for path in ["/healthz", "/readyz"] {
        let response = client().get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers_and_a_fresh_nonce() {
    let app = spawn().await;
    let csp = |headers: &HeaderMap| headers.get("content-security-policy").unwrap().to_str().unwrap().to_owned();
    let first = client().get(format!("{}/sign-in", app.base)).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let headers = first.headers().clone();
    let body = first.text().await.unwrap();
    let policy = csp(&headers);
    let nonce = policy.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("a nonce").to_owned();
    assert!(body.contains(&format!("nonce=\"{nonce}\"")), "the hydration script carries the nonce");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.contains_key("x-request-id"));
    let second = client().get(format!("{}/sign-in", app.base)).send().await.unwrap();
    assert_ne!(csp(second.headers()), policy, "each response has its own nonce");
    // Non-Leptos responses get the strict default policy.
    let health = client().get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert!(csp(health.headers()).starts_with("default-src 'self'; script-src 'self';"));
    // Error pages hydrate too: their policy names the nonce their scripts carry.
    let maria = session_cookie(&app.sign_in("maria", None).await).expect("signed in");
    for (path, cookie, status) in
        [("/no-such-page", None, StatusCode::NOT_FOUND), ("/staff", Some(&maria), StatusCode::FORBIDDEN)]
    {
        let mut request = client().get(format!("{}{path}", app.base)).header("accept", "text/html");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie.as_str());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        let policy = csp(response.headers());
        let body = response.text().await.unwrap();
        let nonce = policy.split("'nonce-").nth(1).and_then(|s| s.split('\'').next()).expect("a nonce");
        assert!(body.contains(&format!("nonce=\"{nonce}\"")), "{path}: the scripts carry the policy's nonce");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_without_javascript_redirects_home_and_rotates_the_session() {
    let app = spawn().await;
    let first = app.sign_in("maria", None).await;
    assert_eq!(first.status(), StatusCode::FOUND);
    assert_eq!(first.headers()["location"], "/member");
    let maria = session_cookie(&first).expect("a session cookie");

    // Signing in again from an existing session issues a new session id; the old one is dead.
    let second = app.sign_in("sam", Some(&maria)).await;
    assert_eq!(second.headers()["location"], "/staff");
    let sam = session_cookie(&second).expect("a new session cookie");
    assert_ne!(sam, maria, "session id rotated at sign-in");
    let (_, old) = app.call("session", Some(&maria)).await;
    assert!(old.contains("\"user\":null"), "old session id no longer signs anyone in: {old}");
    let (_, new) = app.call("session", Some(&sam)).await;
    assert!(new.contains("Sam Rivera"), "{new}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookie_is_http_only_and_same_site_lax() {
    let app = spawn().await;
    let response = app.sign_in("maria", None).await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("baton_session="))
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain-http demo: not Secure ({cookie})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_destroys_the_session() {
    let app = spawn().await;
    let cookie = session_cookie(&app.sign_in("maria", None).await).unwrap();
    assert_eq!(app.session_rows().await, 1);
    let (status, _) = app.call("sign_out", Some(&cookie)).await;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    assert_eq!(app.session_rows().await, 0, "deleted from the store");
    let (_, after) = app.call("session", Some(&cookie)).await;
    assert!(after.contains("\"user\":null"), "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_stays_signed_out_with_the_error_in_the_url() {
    let app = spawn().await;
    let response = client()
        .post(format!("{}/api/sign_in", app.base))
        .header("accept", "text/html")
        .header("referer", format!("{}/sign-in", app.base))
        .form(&[("username", "maria"), ("password", "wrong password"), ("next", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/sign-in?", app.base)) && location.contains("__err="), "{location}");
    assert!(session_cookie(&response).is_none(), "no session for a failed sign-in");
    assert!(!location.contains("wrong"), "the password never travels back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused() {
    let app = spawn().await;
    for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let response = client()
            .post(format!("{}/api/sign_in", app.base))
            .header(name, HeaderValue::from_static(value))
            .form(&[("username", "maria"), ("password", PASSWORD), ("next", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        assert!(session_cookie(&response).is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_functions_check_roles_on_the_server() {
    let app = spawn().await;
    let (status, anonymous) = app.call("member/home", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.contains("SignInRequired"), "{anonymous}");
    let (_, anonymous_staff) = app.call("staff/home", None).await;
    assert!(anonymous_staff.contains("SignInRequired"), "{anonymous_staff}");

    let member = session_cookie(&app.sign_in("maria", None).await).unwrap();
    let (_, own) = app.call("member/home", Some(&member)).await;
    assert!(own.contains("Maria Garcia") && own.contains("M-1"), "{own}");
    let (status, staff_as_member) = app.call("staff/home", Some(&member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(staff_as_member.contains("Forbidden"), "{staff_as_member}");
    assert!(!staff_as_member.contains("members"), "no staff data leaks: {staff_as_member}");

    let staff = session_cookie(&app.sign_in("sam", None).await).unwrap();
    let (_, console) = app.call("staff/home", Some(&staff)).await;
    assert!(console.contains("\"members\":1"), "{console}");
    let (_, member_as_staff) = app.call("member/home", Some(&staff)).await;
    assert!(member_as_staff.contains("Forbidden"), "{member_as_staff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_pages_send_visitors_to_sign_in() {
    let app = spawn().await;
    // As browsers navigate: accepting HTML.
    let page = |path: &str| client().get(format!("{}{path}", app.base)).header("accept", "text/html");
    let response = page("/member").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "/sign-in?next=%2Fmember");
    let member = session_cookie(&app.sign_in("maria", None).await).unwrap();
    let forbidden = page("/staff").header("cookie", member).send().await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_are_404_and_language_switch_sets_the_cookie() {
    let app = spawn().await;
    let missing = client().get(format!("{}/nothing/here", app.base)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let switch = client().get(format!("{}/locale/es?next=%2Fmember", app.base)).send().await.unwrap();
    assert_eq!(switch.status(), StatusCode::SEE_OTHER);
    assert_eq!(switch.headers()["location"], "/member");
    assert!(switch.headers()["set-cookie"].to_str().unwrap().starts_with("i18n_pref_locale=es;"));
    let away = client().get(format!("{}/locale/es?next=https%3A%2F%2Fevil.example", app.base)).send().await.unwrap();
    assert_eq!(away.headers()["location"], "/", "never redirects off-site");
    let unknown = client().get(format!("{}/locale/xx", app.base)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let spanish = crate::support::text(&format!("{}/", app.base), "i18n_pref_locale=es").await;
    assert!(spanish.contains("Traiga sus registros de salud"), "Spanish page from the cookie");
}
