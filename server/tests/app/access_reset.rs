//! Staff cannot take over a member's account: an invitation is only for a member without a
//! password; resetting a member's access is an admin's, with a reason kept in the audit log.

use reqwest::StatusCode;

use crate::staff::spawn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_resets_a_members_access_and_says_why() {
    let app = spawn().await;
    let maria = app.maria.0.to_string();
    let sam = app.sign_in("sam").await;
    // Maria has a password: staff get no invitation link for her.
    assert_eq!(app.call("staff/invite", &[("member", maria.as_str())], Some(&sam)).await, StatusCode::BAD_REQUEST);
    assert!(app.store.latest_invitation(app.maria).await.unwrap().is_none());
    let reset = [("member", maria.as_str()), ("reason", "lost her phone")];
    assert_eq!(app.call("staff/member/reset", &reset, Some(&sam)).await, StatusCode::FORBIDDEN);

    // Her record has the email address the roster gave.
    let patient = serde_json::json!({"resourceType": "Patient", "id": "member-maria", "name": [{"text": "Maria Garcia"}],
        "telecom": [{"system": "email", "value": "maria@example.org"}]});
    baton_records::load(&app.store, [patient], &app.services.local_base, Some(app.maria)).await.unwrap();
    app.store.set_account_patient(app.maria, "member-maria").await.unwrap();

    // An admin must say why.
    let alex = app.sign_in("alex").await;
    let (status, location) =
        app.post("staff/member/reset", &[("member", maria.as_str()), ("reason", " ")], Some(&alex)).await;
    assert!(status.is_redirection());
    assert_eq!(location.as_deref(), Some(format!("/staff/members/{maria}?problem=reason").as_str()));
    app.sign_in("maria").await; // still her password

    let (status, location) = app.post("staff/member/reset", &reset, Some(&alex)).await;
    assert!(status.is_redirection());
    assert_eq!(location.as_deref(), Some(format!("/staff/members/{maria}?reset=emailed").as_str()));
    let account = app.store.account_by_id(app.maria).await.unwrap().unwrap();
    assert!(!account.has_password(), "her old password no longer signs in");
    assert!(app.store.latest_invitation(app.maria).await.unwrap().is_some(), "a new link for her");
    let events = app.audit("member.access_reset").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].detail.as_str(), events[0].member_account),
        ("lost her phone (member told: emailed)", Some(app.maria.0))
    );
    // She is told, in plain words, without the reason or anything about her health.
    let sent = app.mailer.kept();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "maria@example.org");
    assert!(sent[0].body.contains("reset your access") && sent[0].body.contains("restableció"), "{}", sent[0].body);
    assert!(!sent[0].body.contains("phone"), "the reason stays in the audit log");
    let (_, page, _) = app.get(&format!("/staff/members/{maria}?reset=emailed"), Some(&alex)).await;
    assert!(page.contains("id=\"reset-outcome\"") && page.contains("was told by email"));
}
