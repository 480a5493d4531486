//! The embedded demo: a few members and staff with known passwords, created when missing.

use anyhow::Context;
use app::ssr::Services;
use baton_accounts::{AccountError, NewMember, NewPassword, NewStaff, Role, Roles, Username};
use time::Date;
use time::macros::date;

use crate::startup::Application;

/// Every demo account's password (printed by `baton demo`).
pub const DEMO_PASSWORD: &str = "baton-demo-2026";

/// A demo account, for the banner.
#[derive(Debug, Clone)]
pub struct DemoAccount {
    pub username: &'static str,
    pub display_name: &'static str,
    pub kind: &'static str,
}

struct DemoMember {
    username: &'static str,
    display_name: &'static str,
    member_id: &'static str,
    birth_date: Date,
    coverage_start: Date,
}

const MEMBERS: [DemoMember; 3] = [
    DemoMember {
        username: "maria",
        display_name: "Maria Garcia",
        member_id: "CVH-100234",
        birth_date: date!(1984 - 03 - 12),
        coverage_start: date!(2026 - 01 - 01),
    },
    DemoMember {
        username: "james",
        display_name: "James Wilson",
        member_id: "CVH-100871",
        birth_date: date!(1959 - 11 - 02),
        coverage_start: date!(2026 - 01 - 01),
    },
    DemoMember {
        username: "ana",
        display_name: "Ana López",
        member_id: "CVH-101552",
        birth_date: date!(1992 - 07 - 24),
        coverage_start: date!(2026 - 12 - 01),
    },
];

/// Creates the demo accounts that do not exist yet; returns all of them.
pub async fn seed(services: &Services) -> anyhow::Result<Vec<DemoAccount>> {
    let password = || NewPassword::parse(DEMO_PASSWORD).context("demo password");
    let mut accounts = Vec::new();
    for member in MEMBERS {
        let created = services
            .accounts
            .create_member(NewMember {
                username: Username::parse(member.username)?,
                display_name: member.display_name.into(),
                password: Some(password()?),
                member_id: member.member_id.into(),
                birth_date: member.birth_date,
                coverage_start: member.coverage_start,
            })
            .await;
        already_there_is_fine(created)?;
        accounts.push(DemoAccount { username: member.username, display_name: member.display_name, kind: "member" });
    }
    let staff = [
        ("sam", "Sam Rivera", Roles::of([Role::Staff]), "staff"),
        ("alex", "Alex Chen", Roles::of([Role::Staff, Role::Privacy, Role::Admin]), "admin"),
    ];
    for (username, display_name, roles, kind) in staff {
        let created = services
            .accounts
            .create_staff(NewStaff {
                username: Username::parse(username)?,
                display_name: display_name.into(),
                password: password()?,
                roles,
            })
            .await;
        already_there_is_fine(created)?;
        accounts.push(DemoAccount { username, display_name, kind });
    }
    Ok(accounts)
}

fn already_there_is_fine<T>(result: Result<T, AccountError>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(AccountError::UsernameTaken) | Err(AccountError::MemberIdTaken) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// What `baton demo` prints once it is ready.
pub fn print_banner(app: &Application, accounts: &[DemoAccount]) {
    let services = app.services();
    println!();
    println!("  Baton is running: {} ({})", app.public_url(), services.plan_name);
    println!();
    println!("  Demo sign-ins (password for all: {DEMO_PASSWORD}):");
    for account in accounts {
        println!("    {:<7} {:<8} {}", account.kind, account.username, account.display_name);
    }
    println!();
    println!("  Stop with Ctrl-C.");
    println!();
}
