//! Roster import end to end against a real store, on SQLite and on PostgreSQL: a good file,
//! a file with errors, re-import, and the invitation link.

use baton_accounts::{Accounts, NewPassword, NewStaff, Role, Roles, ThrottlePolicy, Username};
use baton_enrollment::{Enrollment, Format, Invitations, MemberOutcome, roster};
use baton_store::{AccountId, Store, Timestamp};
use baton_transfer::TokenCipher;
use serde_json::Value;

const BASE: &str = "https://newplan.example/fhir";

const ROSTER: &str = "member_id,given_name,family_name,birth_date,sex,email,coverage_start,plan\n\
    NP-1001,Rosa,Diaz,1980-04-23,F,rosa@example.org,2026-01-01,Gold PPO\n\
    NP-1002,Tom,Nguyen,1975-11-02,M,,2026-01-01,Silver HMO\n";

async fn setup(store: Store) -> (Enrollment, AccountId) {
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    let staff = accounts
        .create_staff(NewStaff {
            username: Username::parse("sam").unwrap(),
            display_name: "Sam Rivera".into(),
            password: NewPassword::parse("a staff password").unwrap(),
            roles: Roles::of([Role::Staff]),
        })
        .await
        .unwrap();
    let invitations = Invitations::new(store.clone(), TokenCipher::new(&[7; 32]), "https://newplan.example/");
    let enrollment =
        Enrollment { store, accounts, invitations, local_base: BASE.into(), plan_name: "Northwind Health".into() };
    (enrollment, staff.id)
}

fn body(resource: Option<baton_store::StoredResource>) -> Value {
    serde_json::from_str(&resource.expect("stored").body).unwrap()
}

async fn good_file_then_reimport_then_change(store: Store) {
    let (enrollment, staff) = setup(store.clone()).await;
    let now = Timestamp::now();
    let preview = roster::parse(Format::Csv, ROSTER).unwrap();
    let report = enrollment.commit(&preview, staff, now).await.unwrap();
    assert_eq!((report.created, report.updated, report.unchanged, report.failed), (2, 0, 0, 0), "{report:#?}");

    let rosa = store.account_by_member_id("NP-1001").await.unwrap().expect("account");
    assert_eq!(rosa.display_name, "Rosa Diaz");
    assert_eq!(rosa.username, "np-1001");
    assert_eq!(rosa.password_hash, None, "the member sets their own password");
    assert_eq!(rosa.coverage_start.map(baton_vocab::day::format).as_deref(), Some("2026-01-01"));
    let patient_id = rosa.patient_id.clone().expect("linked to a Patient");
    let patient = body(store.read_resource("Patient", &patient_id).await.unwrap());
    assert_eq!(patient["birthDate"], "1980-04-23");
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["identifier"][0]["value"], "NP-1001");
    assert_eq!(patient["telecom"][0]["value"], "rosa@example.org");
    let coverage = body(store.read_resource("Coverage", &format!("coverage-{}", rosa.id.0)).await.unwrap());
    assert_eq!(coverage["beneficiary"]["reference"], format!("Patient/{patient_id}"));
    assert_eq!(coverage["period"]["start"], "2026-01-01");
    assert_eq!(coverage["class"][0]["name"], "Gold PPO");

    // The invitation link works once, then never again.
    let status = enrollment.invitations.status(rosa.id, now).await.unwrap().expect("invited");
    let link = status.link.expect("an open link");
    let token = link.split_once("token=").unwrap().1.to_owned();
    assert!(link.starts_with("https://newplan.example/welcome?token="), "{link}");
    let token_hash = {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let stored = store.invitation(&token_hash).await.unwrap().expect("found by its hash");
    assert!(!stored.sealed_token.contains(&token), "the token is not stored in clear");
    let accepted =
        enrollment.invitations.accept(&token, NewPassword::parse("rosa's new password").unwrap(), now).await.unwrap();
    assert_eq!(accepted, rosa.id);
    let signed_in =
        enrollment.accounts.sign_in("np-1001", "rosa's new password", None, Timestamp::now()).await.expect("sign in");
    assert_eq!(signed_in.id, rosa.id);
    assert!(
        enrollment.invitations.accept(&token, NewPassword::parse("another password!").unwrap(), now).await.is_err(),
        "single use"
    );
    assert!(enrollment.invitations.status(rosa.id, now).await.unwrap().unwrap().link.is_none());
    // A link made for her now (by someone who should not have) cannot replace her password.
    let link = enrollment.invitations.issue(rosa.id, Some(staff), now).await.unwrap();
    let stolen = link.split("token=").nth(1).unwrap();
    let taken = enrollment.invitations.accept(stolen, NewPassword::parse("an intruder's password").unwrap(), now).await;
    assert!(matches!(taken, Err(baton_enrollment::InvitationError::NotValid)), "{taken:?}");
    enrollment.accounts.sign_in("np-1001", "rosa's new password", None, Timestamp::now()).await.expect("still hers");

    // The same file again: nothing changes, no second account, no new version.
    let versions = store.read_resource("Patient", &patient_id).await.unwrap().unwrap().version_id;
    let again = enrollment.commit(&preview, staff, now).await.unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 2), "{again:#?}");
    assert_eq!(store.read_resource("Patient", &patient_id).await.unwrap().unwrap().version_id, versions);
    assert_eq!(store.count_accounts_with_role(baton_vocab::Role::Member).await.unwrap(), 2);

    // A corrected row updates that member only.
    let changed = ROSTER.replace("Tom,Nguyen,1975-11-02", "Tom,Nguyen-Reyes,1975-11-02");
    let report = enrollment.commit(&roster::parse(Format::Csv, &changed).unwrap(), staff, now).await.unwrap();
    assert_eq!((report.created, report.updated, report.unchanged), (0, 1, 1), "{report:#?}");
    let tom = store.account_by_member_id("NP-1002").await.unwrap().unwrap();
    assert_eq!(tom.display_name, "Tom Nguyen-Reyes");
    let patient = body(store.read_resource("Patient", tom.patient_id.as_deref().unwrap()).await.unwrap());
    assert_eq!(patient["name"][0]["family"], "Nguyen-Reyes");
}

async fn file_with_errors_imports_only_valid_rows(store: Store) {
    let (enrollment, staff) = setup(store.clone()).await;
    let csv = format!(
        "{ROSTER}NP-1003,Ann,,1990-01-01,F,,2026-01-01,Gold PPO\nNP-1004,Bo,Li,1990-13-01,M,,2026-01-01,Gold\n"
    );
    let preview = roster::parse(Format::Csv, &csv).unwrap();
    assert_eq!(preview.error_count(), 2);
    let report = enrollment.commit(&preview, staff, Timestamp::now()).await.unwrap();
    assert_eq!((report.created, report.skipped), (2, 2));
    assert!(store.account_by_member_id("NP-1003").await.unwrap().is_none());
    assert!(store.account_by_member_id("NP-1004").await.unwrap().is_none());
    assert!(report.lines.iter().all(|l| matches!(l.outcome, MemberOutcome::Created { .. })));
}

async fn an_existing_sign_in_name_is_reported_not_fatal(store: Store) {
    let (enrollment, staff) = setup(store.clone()).await;
    enrollment
        .accounts
        .create_staff(NewStaff {
            username: Username::parse("np-1002").unwrap(),
            display_name: "Someone".into(),
            password: NewPassword::parse("a staff password").unwrap(),
            roles: Roles::of([Role::Staff]),
        })
        .await
        .unwrap();
    let report =
        enrollment.commit(&roster::parse(Format::Csv, ROSTER).unwrap(), staff, Timestamp::now()).await.unwrap();
    assert_eq!((report.created, report.failed), (1, 1), "{report:#?}");
    let failed = report.lines.iter().find(|l| l.member_id == "NP-1002").unwrap();
    assert!(
        matches!(&failed.outcome, MemberOutcome::Failed { reason } if reason.contains("belongs to another account"))
    );
}

#[tokio::test]
async fn roster_on_sqlite() {
    baton_store::testing::on_sqlite(good_file_then_reimport_then_change).await;
    baton_store::testing::on_sqlite(file_with_errors_imports_only_valid_rows).await;
    baton_store::testing::on_sqlite(an_existing_sign_in_name_is_reported_not_fatal).await;
}

#[tokio::test]
async fn roster_on_postgres() {
    baton_store::testing::on_postgres(good_file_then_reimport_then_change).await;
    baton_store::testing::on_postgres(file_with_errors_imports_only_valid_rows).await;
}
