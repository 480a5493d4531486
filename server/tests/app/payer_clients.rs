//! Admins register other plans' systems for the Payer-to-Payer API in the console, suspend,
//! resume and remove them; every change is audited, and nobody else may make one.

use baton_store::ClientState;
use reqwest::StatusCode;

use crate::staff::spawn;
use crate::support::client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_registers_suspends_and_removes_another_plans_system() {
    let app = spawn().await;
    // A real public key set: this Baton's own.
    let jwks = client().get(format!("{}/oauth/jwks", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(jwks.contains("\"keys\""), "{jwks}");
    let form = |client_id: &'static str, jwks: &str, scopes: &'static str| {
        vec![
            ("client_id", client_id),
            ("name", "Cedar Valley Health (Payer-to-Payer)"),
            ("jwks_url", ""),
            ("jwks", jwks),
            ("scopes", scopes),
            ("identifiers", "urn:oid:2.16.840.1.113883.6.300|12345"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect::<Vec<_>>()
    };
    let scopes = "system/*.rs http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch";
    let good = form("cedar-valley", &jwks, scopes);

    // Staff who are not admins may not.
    let sam = app.sign_in("sam").await;
    assert_eq!(app.call("staff/payer-clients/register", &borrow(&good), Some(&sam)).await, StatusCode::FORBIDDEN);
    assert_eq!(app.call("staff/payer-clients", &[], Some(&sam)).await, StatusCode::FORBIDDEN);
    let maria = app.sign_in("maria").await;
    let state = [("client_id", "cedar-valley"), ("state", "suspended")];
    assert_eq!(app.call("staff/payer-clients/state", &state, Some(&maria)).await, StatusCode::FORBIDDEN);

    // Bad forms say what is wrong and save nothing.
    let alex = app.sign_in("alex").await;
    for (bad, problem) in [
        (form("cedar valley", &jwks, scopes), "client_id"),
        (form("cedar-valley", "{\"not\": \"keys\"}", scopes), "jwks"),
        (form("cedar-valley", "", scopes), "keys"),
        (form("cedar-valley", &jwks, "system/*.write"), "scopes"),
        (form("cedar-valley", &jwks, "patient/*.rs"), "scopes"),
    ] {
        let (status, location) = app.post("staff/payer-clients/register", &borrow(&bad), Some(&alex)).await;
        assert!(status.is_redirection(), "{status}");
        assert_eq!(location.as_deref(), Some(format!("/staff/payer-clients?problem={problem}").as_str()));
    }
    assert!(app.store.oauth_client("cedar-valley").await.unwrap().is_none());

    let (status, location) = app.post("staff/payer-clients/register", &borrow(&good), Some(&alex)).await;
    assert!(status.is_redirection(), "{status}");
    assert_eq!(location.as_deref(), Some("/staff/payer-clients?done=registered"));
    let stored = app.store.oauth_client("cedar-valley").await.unwrap().unwrap();
    assert!(stored.is_system() && stored.state == ClientState::Active);
    assert_eq!(stored.identifiers().collect::<Vec<_>>(), ["urn:oid:2.16.840.1.113883.6.300|12345"]);
    let (status, page, _) = app.get("/staff/payer-clients", Some(&alex)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Cedar Valley Health (Payer-to-Payer)") && page.contains("id=\"client-cedar-valley\""));
    assert!(page.contains(&format!("{}/oauth/token", app.base)), "the token URL to give the other plan");
    // The same id again is refused.
    let (_, location) = app.post("staff/payer-clients/register", &borrow(&good), Some(&alex)).await;
    assert_eq!(location.as_deref(), Some("/staff/payer-clients?problem=client_id_taken"));

    // Suspend, resume, remove: each audited, removal final.
    for state in ["suspended", "active", "removed"] {
        let (status, _) = app
            .post("staff/payer-clients/state", &[("client_id", "cedar-valley"), ("state", state)], Some(&alex))
            .await;
        assert!(status.is_redirection());
        let stored = app.store.oauth_client("cedar-valley").await.unwrap().unwrap();
        assert_eq!(stored.state.as_str(), state);
        assert_eq!(stored.state_changed_by.as_deref(), Some("alex"));
    }
    let (_, location) =
        app.post("staff/payer-clients/state", &[("client_id", "cedar-valley"), ("state", "active")], Some(&alex)).await;
    assert_eq!(location.as_deref(), Some("/staff/payer-clients"));
    assert_eq!(app.store.oauth_client("cedar-valley").await.unwrap().unwrap().state, ClientState::Removed);
    let (_, page, _) = app.get("/staff/payer-clients", Some(&alex)).await;
    let row = page.split("id=\"client-cedar-valley\"").nth(1).and_then(|r| r.split("</tr>").next()).unwrap();
    assert!(row.contains("Removed") && !row.contains("<form"), "a removed system has nothing left to change: {row}");
    assert_eq!(app.audit("p2p.client.register").await.len(), 1);
    assert_eq!(app.audit("p2p.client.state").await.len(), 4);
}

fn borrow<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    form.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
