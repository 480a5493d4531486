//! The embedded demo: this Baton as the new plan (Cedar Valley Health), plus a second Baton in
//! the same process as the members' previous plan (Riverbend Health Plan), with synthetic
//! records for the same people. Everything is created when missing, so a second run starts in
//! seconds with the same data.
//!
//! Rosa Martínez came with the roster already opted in to Payer-to-Payer: Cedar Valley asks
//! Riverbend for her records in bulk (`$bulk-member-match`, `$davinci-data-export`) within a
//! minute of starting, with no sign-in by anyone — staff watch it under Previous plans.

use std::path::Path;

use anyhow::Context;
use app::ssr::Services;
use baton_accounts::{AccountError, NewMember, NewPassword, NewStaff, Role, Roles, Username};
use baton_holder::ClientSettings;
use baton_store::AccountId;
use baton_synth::{Options, Payer};
use time::Date;
use time::macros::date;

use crate::config::Config;
use crate::startup::Application;

/// Every demo account's password (printed by `baton demo`).
pub const DEMO_PASSWORD: &str = "baton-demo-2026";
/// The new plan's client registration at the demo old plan.
pub const DEMO_CLIENT_ID: &str = "cedar-valley-baton";

/// A demo account, for the banner.
#[derive(Debug, Clone)]
pub struct DemoAccount {
    pub username: &'static str,
    pub display_name: &'static str,
    /// The role the banner names it by.
    pub kind: Role,
}

struct DemoMember {
    username: &'static str,
    display_name: &'static str,
    member_id: &'static str,
    birth_date: Date,
    coverage_start: CoverageStart,
}

/// When a demo member's coverage with the new plan starts, counted from the day the demo is
/// seeded: the time to bring records runs until 90 days after it, so fixed dates would close it.
#[derive(Clone, Copy)]
enum CoverageStart {
    /// The first day of this month.
    ThisMonth,
    /// The first day of next month (enrolled early).
    NextMonth,
}

impl CoverageStart {
    fn date(self, today: Date) -> Date {
        let first = today.replace_day(1).unwrap_or(today);
        match self {
            CoverageStart::ThisMonth => first,
            CoverageStart::NextMonth => (first + time::Duration::days(32)).replace_day(1).unwrap_or(first),
        }
    }
}

const MEMBERS: [DemoMember; 5] = [
    DemoMember {
        username: "maria",
        display_name: "Maria Garcia",
        member_id: "CVH-100234",
        birth_date: date!(1984 - 03 - 12),
        coverage_start: CoverageStart::ThisMonth,
    },
    DemoMember {
        username: "james",
        display_name: "James Wilson",
        member_id: "CVH-100871",
        birth_date: date!(1959 - 11 - 02),
        coverage_start: CoverageStart::ThisMonth,
    },
    DemoMember {
        username: "ana",
        display_name: "Ana López",
        member_id: "CVH-101552",
        birth_date: date!(1992 - 07 - 24),
        coverage_start: CoverageStart::NextMonth,
    },
    // Came from Lakeshore, which is offline in the demo (see `seed_offline_history`).
    DemoMember {
        username: "lee",
        display_name: "Lee Park",
        member_id: "CVH-102090",
        birth_date: date!(1977 - 05 - 30),
        coverage_start: CoverageStart::ThisMonth,
    },
    // Opted in at enrollment: asked for in bulk (see `seed_previous_coverage`).
    DemoMember {
        username: "rosa",
        display_name: "Rosa Martínez",
        member_id: "CVH-102311",
        birth_date: date!(1971 - 09 - 14),
        coverage_start: CoverageStart::ThisMonth,
    },
];

/// Rosa at Riverbend: a member no one signs in for, asked for in bulk.
pub fn bulk_member() -> baton_synth::Member {
    baton_synth::Member {
        patient_id: "rb-rosa".into(),
        member_id: "RB-206112".into(),
        given: "Rosa".into(),
        family: "Martínez".into(),
        gender: "female",
        birth_date: date!(1971 - 09 - 14),
        city: "Decatur".into(),
        state: "IL".into(),
        postal_code: "62521".into(),
        conditions: vec![baton_synth::Condition::Diabetes, baton_synth::Condition::Depression],
        labelling: baton_synth::Labelling::Some,
    }
}

/// The same people's accounts at the demo old plan, in the order of `baton_synth::demo_members`.
const OLD_PLAN_USERNAMES: [&str; 4] = ["maria.garcia", "james.wilson", "ana.lopez", "rosa.martinez"];
pub const OLD_PLAN_NAME: &str = "Riverbend Health Plan";

/// The demo old plan's configuration, derived from the new plan's: the next port, its own
/// SQLite database and secrets under `<data_dir>/riverbend`, its own session cookie, and the
/// new plan registered as a client app.
pub fn old_plan_config(new_plan: &Config, new_plan_url: &url::Url) -> anyhow::Result<Config> {
    let listen = new_plan
        .demo
        .old_plan_listen
        .unwrap_or_else(|| std::net::SocketAddr::new(new_plan.listen.ip(), new_plan.listen.port().wrapping_add(1)));
    let data_dir = new_plan.data_dir.join("riverbend");
    let secret = client_secret(&new_plan.data_dir)?;
    let mut config = Config {
        listen,
        public_url: None,
        data_dir,
        database_url: None,
        session_cookie: "baton_session_riverbend".into(),
        plan: crate::config::PlanConfig { name: OLD_PLAN_NAME.into() },
        secrets: Default::default(),
        holder: Default::default(),
        demo: Default::default(),
        ..new_plan.clone()
    };
    config.holder.brand.states = vec!["IL".into(), "IN".into()];
    config.holder.brand.aliases = vec!["Riverbend".into()];
    config.holder.clients.push(ClientSettings {
        client_id: DEMO_CLIENT_ID.into(),
        name: format!("{} (Baton)", new_plan.plan.name),
        redirect_uris: vec![format!("{new_plan_url}oauth/callback")],
        secret: Some(secret.into()),
        jwks: None,
        jwks_url: None,
        scopes: baton_holder::settings::default_client_scopes(),
        identifiers: vec![],
    });
    // The new plan's system, for the Payer-to-Payer API: its public key fetched from where it
    // publishes it, its Consents checked to name it as the recipient.
    config.holder.clients.push(ClientSettings {
        client_id: DEMO_P2P_CLIENT_ID.into(),
        name: format!("{} (Payer-to-Payer)", new_plan.plan.name),
        redirect_uris: vec![],
        secret: None,
        jwks: None,
        jwks_url: Some(new_plan_url.join("p2p/jwks.json")?),
        scopes: baton_staff::default_scopes(),
        identifiers: new_plan.holder.identifiers.clone(),
    });
    config.holder.identifiers = vec![OLD_PLAN_IDENTIFIER.into()];
    Ok(config)
}

/// The demo plans' identifiers as Consents name them (NAIC-style company codes, made up).
pub const OLD_PLAN_IDENTIFIER: &str = "urn:oid:2.16.840.1.113883.6.300|90001";
pub const NEW_PLAN_IDENTIFIER: &str = "urn:oid:2.16.840.1.113883.6.300|90002";
/// The new plan's system's client id at the demo old plan.
pub const DEMO_P2P_CLIENT_ID: &str = "cedar-valley-p2p";

/// The new plan's payer directory entry for the demo old plan (its registration there).
pub fn old_plan_payer(old_plan: &Config, secret: String) -> crate::config::PayerConfig {
    crate::config::PayerConfig {
        id: "riverbend".into(),
        name: OLD_PLAN_NAME.into(),
        aliases: vec!["Riverbend".into(), "RHP".into()],
        states: vec!["IL".into(), "IN".into()],
        logo_url: None,
        fhir_base: old_plan.public_url().join("fhir").expect("a valid URL"),
        client_id: DEMO_CLIENT_ID.into(),
        client_secret: Some(secret.into()),
        private_key: None,
        private_key_file: None,
        private_key_alg: "RS384".into(),
        private_key_kid: None,
        authorize_url: None,
        token_url: None,
        scopes: None,
        enabled: true,
        // The Payer-to-Payer API too: this plan's system is registered there (see
        // `old_plan_config`), so members can bring records without signing in at Riverbend.
        p2p_client_id: Some(DEMO_P2P_CLIENT_ID.into()),
        p2p_scopes: None,
        p2p_token_url: None,
        identifiers: vec![OLD_PLAN_IDENTIFIER.into()],
    }
}

/// A previous plan that never answers (nothing listens at its address): the demo's transfers
/// from it fail for real, so staff have a failed transfer to look at and retry.
pub const OFFLINE_PLAN_ID: &str = "lakeshore";

pub fn offline_plan_payer() -> crate::config::PayerConfig {
    crate::config::PayerConfig {
        id: OFFLINE_PLAN_ID.into(),
        name: "Lakeshore Health (offline in this demo)".into(),
        aliases: vec!["Lakeshore".into()],
        states: vec!["MI".into()],
        logo_url: None,
        // Port 9 (discard) on loopback: connections are refused at once.
        fhir_base: url::Url::parse("http://127.0.0.1:9/fhir").expect("a valid URL"),
        client_id: DEMO_CLIENT_ID.into(),
        client_secret: Some("lakeshore-demo-secret".into()),
        private_key: None,
        private_key_file: None,
        private_key_alg: "RS384".into(),
        private_key_kid: None,
        authorize_url: None,
        token_url: None,
        scopes: None,
        enabled: true,
        p2p_client_id: None,
        p2p_scopes: None,
        p2p_token_url: None,
        identifiers: vec![],
    }
}

/// Lee authorized Lakeshore before it went offline (seeded once): the worker tries to pull
/// their records, cannot reach it, and fails the transfer with the reason.
pub async fn seed_offline_history(app: &Application) -> anyhow::Result<()> {
    let services = app.services();
    let Some(lee) = services.accounts.by_username(&Username::parse("lee")?).await? else { return Ok(()) };
    let id = AccountId(lee.id.0);
    if app.store().links_of(id).await?.iter().any(|l| l.payer_id == OFFLINE_PLAN_ID) {
        return Ok(());
    }
    let granted = baton_journey::Granted {
        access_token: "demo-token-from-before-the-outage".into(),
        expires_in_ms: Some(365 * 24 * 3600 * 1000),
        refresh_token: None,
        id_token: None,
        scope: "launch/patient openid fhirUser patient/*.rs".into(),
        patient: Some("lakeshore-patient-1".into()),
        // Lakeshore is not a Baton: it says nothing of sensitive information.
        sensitive: None,
    };
    services
        .journey
        .connect_granted(id, OFFLINE_PLAN_ID, false, granted, baton_store::Timestamp::now())
        .await
        .context("recording Lee's authorization at the offline plan")?;
    Ok(())
}

/// Rosa's previous coverage at Riverbend, opted in at enrollment (sensitive information left
/// out), as the roster recorded it (seeded once): the new plan's workers ask Riverbend for her
/// records in bulk at their next scheduling tick.
pub async fn seed_previous_coverage(app: &Application) -> anyhow::Result<()> {
    let services = app.services();
    let Some(rosa) = services.accounts.by_username(&Username::parse("rosa")?).await? else { return Ok(()) };
    let id = AccountId(rosa.id.0);
    if !app.store().previous_coverages(id).await?.is_empty() {
        return Ok(());
    }
    let now = baton_store::Timestamp::now();
    let ended = time::OffsetDateTime::now_utc().date().replace_day(1).ok().and_then(|d| d.previous_day());
    let input = baton_journey::CoverageInput::parse(
        "riverbend",
        &bulk_member().member_id,
        Some(date!(2020 - 01 - 01)),
        ended,
        false,
    )
    .context("Rosa's previous coverage")?;
    let opt_in = baton_journey::OptInChoice {
        include_sensitive: false,
        channel: baton_vocab::ConsentChannel::Enrollment,
        recorded_by: "roster".into(),
        at: now,
    };
    services
        .journey
        .record_previous_coverage(id, &input, Some(&opt_in), "roster", now)
        .await
        .context("recording Rosa's opt-in")?;
    Ok(())
}

/// The shared secret of the new plan's registration at the demo old plan: generated once under
/// the new plan's data directory (mode 0600), like the other demo secrets.
pub fn client_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("secrets").join("riverbend-client-secret");
    if !path.exists() {
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        if let Ok(mut file) = options.open(&path) {
            std::io::Write::write_all(&mut file, secret.as_bytes())?;
        }
    }
    Ok(std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?.trim().to_owned())
}

/// Creates the new plan's demo accounts that do not exist yet; returns all of them.
pub async fn seed(services: &Services) -> anyhow::Result<Vec<DemoAccount>> {
    let password = || NewPassword::parse(DEMO_PASSWORD).context("demo password");
    let today = time::OffsetDateTime::now_utc().date();
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
                coverage_start: member.coverage_start.date(today),
            })
            .await;
        already_there_is_fine(created)?;
        accounts.push(DemoAccount { username: member.username, display_name: member.display_name, kind: Role::Member });
    }
    let staff = [
        ("sam", "Sam Rivera", Roles::of([Role::Staff]), Role::Staff),
        ("alex", "Alex Chen", Roles::of([Role::Staff, Role::Privacy, Role::Admin]), Role::Admin),
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

/// Creates the demo old plan's members with their synthetic records, when missing.
pub async fn seed_old_plan(app: &Application) -> anyhow::Result<Vec<DemoAccount>> {
    let services = app.services();
    let store = app.store();
    let fhir_base = app.holder().urls.fhir_base.clone();
    let payer = Payer {
        organization_id: "riverbend-health-plan".into(),
        name: OLD_PLAN_NAME.into(),
        identifier_system: "https://riverbend.example".into(),
    };
    let mut accounts = vec![];
    let members = baton_synth::demo_members("rb").into_iter().chain([bulk_member()]);
    for (member, username) in members.zip(OLD_PLAN_USERNAMES) {
        let display_name = format!("{} {}", member.given, member.family);
        let created = services
            .accounts
            .create_member(NewMember {
                username: Username::parse(username)?,
                display_name: display_name.clone(),
                password: Some(NewPassword::parse(DEMO_PASSWORD)?),
                member_id: member.member_id.clone(),
                birth_date: member.birth_date,
                coverage_start: date!(2020 - 01 - 01),
            })
            .await;
        let account = match created {
            Ok(account) => account,
            Err(AccountError::UsernameTaken | AccountError::MemberIdTaken) => {
                services.accounts.by_username(&Username::parse(username)?).await?.context("demo member disappeared")?
            }
            Err(error) => return Err(error.into()),
        };
        if store.read_resource("Patient", &member.patient_id).await?.is_none() {
            store.set_account_patient(account.id, &member.patient_id).await?;
            let record = baton_synth::record(&member, &Options::new(payer.clone()));
            let report = baton_records::load(store, record, &fhir_base, Some(AccountId(account.id.0))).await?;
            tracing::info!(member = %display_name, stored = report.stored, "demo old plan: records loaded");
        }
        accounts.push(DemoAccount {
            username,
            display_name: match username {
                "maria.garcia" => "Maria Garcia",
                "james.wilson" => "James Wilson",
                "rosa.martinez" => "Rosa Martínez",
                _ => "Ana López",
            },
            kind: Role::Member,
        });
    }
    Ok(accounts)
}

fn already_there_is_fine<T>(result: Result<T, AccountError>) -> anyhow::Result<()> {
    match result {
        Ok(_) | Err(AccountError::UsernameTaken) | Err(AccountError::MemberIdTaken) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// What `baton demo` prints once both plans are ready.
pub fn print_banner(
    new_plan: &Application,
    accounts: &[DemoAccount],
    old_plan: &Application,
    old_accounts: &[DemoAccount],
) {
    println!();
    println!("  Baton is running.");
    println!();
    println!("  New plan:  {} — {}", new_plan.services().plan_name, new_plan.public_url());
    println!("  Sign-ins (password for all: {DEMO_PASSWORD}):");
    for account in accounts {
        println!("    {:<7} {:<14} {}", account.kind.as_str(), account.username, account.display_name);
    }
    println!();
    println!("  Demo old plan:  {} — {}", old_plan.services().plan_name, old_plan.public_url());
    println!("  FHIR base:      {}", old_plan.holder().urls.fhir_base);
    println!("  Member sign-ins there (password for all: {DEMO_PASSWORD}):");
    for account in old_accounts {
        println!("    {:<7} {:<14} {}", account.kind.as_str(), account.username, account.display_name);
    }
    println!();
    println!("  Rosa Martínez opted in at enrollment: Cedar Valley asks Riverbend for her records in");
    println!("  bulk within a minute, server to server (staff: Previous plans).");
    println!();
    println!("  Stop with Ctrl-C.");
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_coverage_starts_this_month_or_next() {
        assert_eq!(CoverageStart::ThisMonth.date(date!(2026 - 11 - 25)), date!(2026 - 11 - 01));
        assert_eq!(CoverageStart::ThisMonth.date(date!(2026 - 11 - 01)), date!(2026 - 11 - 01));
        assert_eq!(CoverageStart::NextMonth.date(date!(2026 - 11 - 25)), date!(2026 - 12 - 01));
        assert_eq!(CoverageStart::NextMonth.date(date!(2026 - 12 - 31)), date!(2027 - 01 - 01));
    }
}
