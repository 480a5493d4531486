//! Sign-in, rate limiting and account creation, on SQLite and PostgreSQL.

use std::net::IpAddr;

use baton_accounts::{
    AccountError, Accounts, NewMember, NewPassword, NewStaff, Role, Roles, SignInError, ThrottlePolicy, Username,
};
use baton_store::testing::{on_postgres, on_sqlite};
use baton_store::{Store, Timestamp};
use time::macros::date;

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $case() { super::on_sqlite(super::$case).await } )* }
        mod postgres { $( #[tokio::test] async fn $case() { super::on_postgres(super::$case).await } )* }
    };
}

on_both!(
    member_signs_in_with_the_right_password_only,
    failures_lock_the_account_then_expire,
    unknown_usernames_are_throttled_like_real_ones,
    failures_from_one_ip_are_limited_across_accounts,
    success_resets_the_account_counter,
    duplicate_accounts_are_refused,
    invited_member_without_password_cannot_sign_in,
    parallel_failures_cannot_pass_the_limit,
);

const PASSWORD: &str = "correct horse battery";

fn policy() -> ThrottlePolicy {
    ThrottlePolicy { window: time::Duration::minutes(15), max_failures_per_account: 3, max_failures_per_ip: 5 }
}

async fn with_maria(store: Store) -> Accounts {
    let accounts = Accounts::new(store, policy());
    accounts
        .create_member(NewMember {
            username: Username::parse("maria").unwrap(),
            display_name: "Maria Garcia".into(),
            password: Some(NewPassword::parse(PASSWORD).unwrap()),
            member_id: "NP-1001".into(),
            birth_date: date!(1984 - 03 - 12),
            coverage_start: date!(2026 - 01 - 01),
        })
        .await
        .unwrap();
    accounts
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

async fn member_signs_in_with_the_right_password_only(store: Store) {
    let accounts = with_maria(store).await;
    let now = Timestamp::now();
    let account = accounts.sign_in(" Maria ", PASSWORD, ip("10.0.0.1"), now).await.unwrap();
    assert_eq!(account.display_name, "Maria Garcia");
    assert_eq!(account.roles, Roles::of([Role::Member]));
    assert_eq!(account.member_id.as_deref(), Some("NP-1001"));
    assert_eq!(account.birth_date, Some(date!(1984 - 03 - 12)));
    assert!(matches!(
        accounts.sign_in("maria", "wrong password", ip("10.0.0.1"), now).await,
        Err(SignInError::InvalidCredentials)
    ));
}

async fn failures_lock_the_account_then_expire(store: Store) {
    let accounts = with_maria(store).await;
    let t0 = Timestamp::from_millis(1_800_000_000_000);
    for i in 0..3 {
        let at = t0.plus(time::Duration::seconds(i));
        let result = accounts.sign_in("maria", "nope", ip("10.0.0.1"), at).await;
        assert!(matches!(result, Err(SignInError::InvalidCredentials)), "attempt {i}: {result:?}");
    }
    // Locked: even the right password is refused, with how long to wait.
    let at = t0.plus(time::Duration::minutes(1));
    match accounts.sign_in("maria", PASSWORD, ip("10.0.0.2"), at).await {
        Err(SignInError::TooManyAttempts { retry_after_secs }) => assert_eq!(retry_after_secs, 14 * 60),
        other => panic!("expected a lock, got {other:?}"),
    }
    // After the window the oldest failure has expired and the right password works.
    let later = t0.plus(time::Duration::minutes(15) + time::Duration::seconds(1));
    accounts.sign_in("maria", PASSWORD, ip("10.0.0.2"), later).await.expect("unlocked after the window");
}

async fn unknown_usernames_are_throttled_like_real_ones(store: Store) {
    let accounts = with_maria(store).await;
    let now = Timestamp::now();
    for _ in 0..3 {
        assert!(matches!(
            accounts.sign_in("nobody", "nope", ip("10.0.0.9"), now).await,
            Err(SignInError::InvalidCredentials)
        ));
    }
    assert!(
        matches!(
            accounts.sign_in("nobody", "nope", ip("10.0.0.8"), now).await,
            Err(SignInError::TooManyAttempts { .. })
        ),
        "a missing account locks exactly like an existing one"
    );
    assert!(matches!(
        accounts.sign_in("not a valid name!", "x", ip("10.0.0.7"), now).await,
        Err(SignInError::InvalidCredentials)
    ));
}

async fn failures_from_one_ip_are_limited_across_accounts(store: Store) {
    let accounts = with_maria(store).await;
    let now = Timestamp::now();
    for i in 0..5 {
        let _ = accounts.sign_in(&format!("user{i}"), "nope", ip("203.0.113.5"), now).await;
    }
    assert!(matches!(
        accounts.sign_in("maria", PASSWORD, ip("203.0.113.5"), now).await,
        Err(SignInError::TooManyAttempts { .. })
    ));
    accounts.sign_in("maria", PASSWORD, ip("203.0.113.6"), now).await.expect("other addresses are unaffected");
}

async fn success_resets_the_account_counter(store: Store) {
    let accounts = with_maria(store).await;
    let now = Timestamp::now();
    for _ in 0..2 {
        let _ = accounts.sign_in("maria", "nope", ip("10.0.0.1"), now).await;
    }
    accounts.sign_in("maria", PASSWORD, ip("10.0.0.1"), now).await.unwrap();
    for _ in 0..2 {
        let _ = accounts.sign_in("maria", "nope", ip("10.0.0.1"), now).await;
    }
    accounts.sign_in("maria", PASSWORD, ip("10.0.0.1"), now).await.expect("two new failures are under the limit");
}

async fn duplicate_accounts_are_refused(store: Store) {
    let accounts = with_maria(store).await;
    let staff = |name: &str| NewStaff {
        username: Username::parse(name).unwrap(),
        display_name: "Sam".into(),
        password: NewPassword::parse(PASSWORD).unwrap(),
        roles: Roles::of([Role::Staff]),
    };
    assert!(matches!(accounts.create_staff(staff("maria")).await, Err(AccountError::UsernameTaken)));
    let created = accounts.create_staff(staff("sam")).await.unwrap();
    assert!(created.roles.is_staff());
    let second_maria = NewMember {
        username: Username::parse("maria2").unwrap(),
        display_name: "Maria".into(),
        password: None,
        member_id: "NP-1001".into(),
        birth_date: date!(1984 - 03 - 12),
        coverage_start: date!(2026 - 01 - 01),
    };
    assert!(matches!(accounts.create_member(second_maria).await, Err(AccountError::MemberIdTaken)));
}

async fn invited_member_without_password_cannot_sign_in(store: Store) {
    let accounts = Accounts::new(store, policy());
    let invited = accounts
        .create_member(NewMember {
            username: Username::parse("newbie").unwrap(),
            display_name: "New Member".into(),
            password: None,
            member_id: "NP-2".into(),
            birth_date: date!(1990 - 01 - 01),
            coverage_start: date!(2026 - 02 - 01),
        })
        .await
        .unwrap();
    assert!(!invited.has_password());
    let now = Timestamp::now();
    assert!(matches!(accounts.sign_in("newbie", "", ip("10.0.0.1"), now).await, Err(SignInError::InvalidCredentials)));
    accounts.set_password(invited.id, NewPassword::parse("my new password").unwrap()).await.unwrap();
    accounts.sign_in("newbie", "my new password", ip("10.0.0.1"), now).await.unwrap();
}

async fn parallel_failures_cannot_pass_the_limit(store: Store) {
    let accounts = with_maria(store).await;
    let now = Timestamp::now();
    // Fifteen wrong passwords at once, from fifteen addresses: the account's limit (3) holds.
    let attempts = (0..15).map(|i| {
        let accounts = accounts.clone();
        tokio::spawn(async move { accounts.sign_in("maria", "wrong password", ip(&format!("10.1.0.{i}")), now).await })
    });
    let attempts: Vec<_> = attempts.collect();
    let mut checked = 0;
    let mut throttled = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Err(SignInError::InvalidCredentials) => checked += 1,
            Err(SignInError::TooManyAttempts { .. }) => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(checked <= 3, "{checked} passwords were checked past a limit of 3");
    assert_eq!(checked + throttled, 15);
    // Only the checked attempts count as failures (a throttled one leaves none behind): the
    // right password waits exactly when the checked ones reached the limit, and not after it.
    let right_now = accounts.sign_in("maria", PASSWORD, ip("10.2.0.1"), now).await;
    if checked == 3 {
        assert!(matches!(right_now, Err(SignInError::TooManyAttempts { .. })), "{right_now:?}");
        let later = now.plus(time::Duration::minutes(16));
        assert!(accounts.sign_in("maria", PASSWORD, ip("10.2.0.1"), later).await.is_ok());
    } else {
        assert!(right_now.is_ok(), "{checked} failures, yet {right_now:?}");
    }
}
