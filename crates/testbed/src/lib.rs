//! Two plans wired together without a browser, for tests and the `baton-bench` benchmarks:
//!
//! - [`previous_plan`]: a data holder (the member's previous plan) holding one synthetic
//!   member's record, with the new plan registered as a client and tokens issued to it as if
//!   the member had just approved — the state right after the authorization redirect;
//! - [`enroll`]: the new plan's side of that member — their account, consent and payer link.
//!
//! The tokens are inserted straight into the holder's own database; nothing here reaches past
//! a plan's public API except into stores the caller created for the purpose.

use baton_accounts::{AccountError, Accounts, NewMember, NewPassword, ThrottlePolicy, Username};
use baton_holder::oauth::{random_token, token_hash};
use baton_holder::{ClientSettings, Holder, HolderSettings, SigningKey};
use baton_store::{AccountId, MemberConsent, OAuthGrant, PayerLink, Store, StoreError, Timestamp, TokenKind};
use baton_synth::{Member, Options, Payer};
use serde::{Deserialize, Serialize};
use time::macros::date;
use tower_sessions::{MemoryStore, SessionManagerLayer};
use url::Url;

/// The new plan's client registration at the previous plan.
pub const CLIENT_ID: &str = "new-plan";
pub const CLIENT_SECRET: &str = "a-long-shared-client-secret";
/// The payer id the new plan knows the previous plan by.
pub const PAYER_ID: &str = "riverbend";
/// Every scope a member can grant a plan.
pub const ALL_SCOPES: &str = "launch/patient openid fhirUser offline_access patient/*.rs";

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("the holder's signing key: {0}")]
    Key(String),
    #[error("registering the client: {0}")]
    Client(String),
}

/// What the new plan needs to know to pull the member's records (what a real authorization
/// redirect and token response would have told it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authorization {
    pub fhir_base: String,
    pub token_url: String,
    pub patient_id: String,
    pub scope: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Resources the previous plan holds for the member.
    pub resources: u64,
}

/// How to build the previous plan.
pub struct PreviousPlanSetup {
    /// Where the holder believes it is served (its links and endpoints point there).
    pub public_base: Url,
    pub member: Member,
    pub options: Options,
    /// Scopes granted to the new plan.
    pub scope: String,
}

impl PreviousPlanSetup {
    /// One synthetic member of about `resources` resources (0: a natural record).
    pub fn new(public_base: Url, member: Member, resources: usize) -> Self {
        let mut options = Options::new(Payer {
            organization_id: PAYER_ID.into(),
            name: "Riverbend Health Plan".into(),
            identifier_system: "https://riverbend.example".into(),
        });
        options.target_resources = resources;
        Self { public_base, member, options, scope: ALL_SCOPES.into() }
    }
}

/// A data holder with one member and the new plan's tokens.
pub struct PreviousPlan {
    pub store: Store,
    pub holder: Holder,
    pub member: Member,
    /// The member's account at the previous plan.
    pub account: AccountId,
    pub authorization: Authorization,
}

impl PreviousPlan {
    /// The holder's routes, with the session layer its sign-in pages need.
    pub fn router(&self) -> axum::Router {
        self.holder.router().layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
    }
}

/// Builds the previous plan in `store` (migrated, empty).
pub async fn previous_plan(store: Store, setup: PreviousPlanSetup) -> Result<PreviousPlan, TestbedError> {
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    let settings = HolderSettings {
        clients: vec![ClientSettings {
            client_id: CLIENT_ID.into(),
            name: "New Plan".into(),
            redirect_uris: vec!["https://new-plan.example/oauth/callback".into()],
            secret: Some(CLIENT_SECRET.into()),
            jwks: None,
            jwks_url: None,
            scopes: baton_holder::settings::default_client_scopes(),
            identifiers: vec![],
        }],
        ..Default::default()
    };
    let key = signing_key()?;
    let holder =
        Holder::new(store.clone(), accounts.clone(), "Riverbend Health Plan".into(), &setup.public_base, settings, key);
    holder.register_clients().await.map_err(|e| TestbedError::Client(e.to_string()))?;
    let member = setup.member;
    let account = accounts
        .create_member(NewMember {
            username: Username::parse("member").expect("a valid username"),
            display_name: format!("{} {}", member.given, member.family),
            password: Some(NewPassword::parse("a member password").expect("a valid password")),
            member_id: member.member_id.clone(),
            birth_date: member.birth_date,
            coverage_start: date!(2020 - 01 - 01),
        })
        .await?;
    store.set_account_patient(account.id, &member.patient_id).await?;
    let fhir_base = holder.urls.fhir_base.clone();
    let report =
        baton_records::load(&store, baton_synth::record(&member, &setup.options), &fhir_base, Some(account.id)).await?;

    // Tokens as the holder issues them after the member's approval.
    let now = Timestamp::now();
    let grant = OAuthGrant {
        id: "grant-1".into(),
        client_id: CLIENT_ID.into(),
        account_id: account.id,
        patient_id: member.patient_id.clone(),
        scope: setup.scope.clone(),
        include_sensitive: true,
        created_at: now.millis(),
        revoked_at: None,
    };
    store.insert_oauth_grant(&grant).await?;
    let (access, refresh) = (random_token(), random_token());
    let hours = |h| now.plus(time::Duration::hours(h));
    store.insert_oauth_token(&token_hash(&access), &grant.id, TokenKind::Access, &setup.scope, now, hours(2)).await?;
    store
        .insert_oauth_token(&token_hash(&refresh), &grant.id, TokenKind::Refresh, &setup.scope, now, hours(24 * 90))
        .await?;
    let authorization = Authorization {
        fhir_base,
        token_url: holder.urls.token.clone(),
        patient_id: member.patient_id.clone(),
        scope: setup.scope,
        access_token: access,
        refresh_token: refresh,
        resources: report.stored as u64,
    };
    Ok(PreviousPlan { store, holder, member, account: account.id, authorization })
}

/// How the member enrolled at the new plan.
pub struct Enrollment {
    pub member: AccountId,
    pub link: PayerLink,
}

/// The new plan's side: the member's account, their consent (sensitive data included or not)
/// and the payer link holding the tokens, sealed by `seal` as the engine stores them.
pub async fn enroll(
    store: &Store,
    member: &Member,
    authorization: &Authorization,
    include_sensitive: bool,
    seal: impl Fn(&str, &str) -> String,
) -> Result<Enrollment, TestbedError> {
    let accounts = Accounts::new(store.clone(), ThrottlePolicy::default());
    let account = accounts
        .create_member(NewMember {
            username: Username::parse("maria").expect("a valid username"),
            display_name: format!("{} {}", member.given, member.family),
            password: Some(NewPassword::parse("a member password").expect("a valid password")),
            member_id: "NEW-1".into(),
            birth_date: member.birth_date,
            coverage_start: date!(2026 - 01 - 01),
        })
        .await?;
    let now = Timestamp::now();
    store
        .insert_consent(&MemberConsent {
            id: "consent-1".into(),
            member_account: account.id,
            payer_id: PAYER_ID.into(),
            policy: baton_vocab::ConsentPolicy::of(include_sensitive),
            period_start: now.millis() - 60_000,
            period_end: now.millis() + 90 * 86_400_000,
            given_at: now.millis(),
            channel: baton_vocab::ConsentChannel::Web,
            resource: "{}".into(),
            withdrawn_at: None,
            created_at: now.millis(),
            records_deleted: None,
            records_kept: None,
            records_shared: None,
            replaced_by: None,
        })
        .await?;
    let link = PayerLink {
        id: "link-1".into(),
        member_account: account.id,
        payer_id: PAYER_ID.into(),
        consent_id: Some("consent-1".into()),
        fhir_base: authorization.fhir_base.clone(),
        patient_id: Some(authorization.patient_id.clone()),
        scope: authorization.scope.clone(),
        include_sensitive,
        access_token: Some(seal(&authorization.access_token, &PayerLink::token_place("link-1", "access"))),
        access_expires_at: Some(now.millis() + 3_600_000),
        refresh_token: Some(seal(&authorization.refresh_token, &PayerLink::token_place("link-1", "refresh"))),
        id_token: None,
        state: baton_vocab::LinkState::Active,
        created_at: now.millis(),
        updated_at: now.millis(),
        source_sensitive: None,
        access: baton_vocab::LinkAccess::Member,
    };
    store.insert_link(&link).await?;
    Ok(Enrollment { member: account.id, link })
}

/// One RSA key for every holder of the process (generating one takes a while).
fn signing_key() -> Result<SigningKey, TestbedError> {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let pem = match PEM.get() {
        Some(pem) => pem,
        None => {
            let pem = SigningKey::generate_pem().map_err(|e| TestbedError::Key(e.to_string()))?;
            PEM.get_or_init(|| pem)
        }
    };
    SigningKey::from_pem(pem).map_err(|e| TestbedError::Key(e.to_string()))
}
