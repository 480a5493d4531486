//! Baton as the old plan: the data-holder side of member-authorized payer-to-payer exchange.
//!
//! Every plan is someone's old plan. This crate lets a member authorize another plan's app
//! over OAuth 2.0 / SMART App Launch 2.2 (PDex §pdex-111..116) and serves that app the
//! member's records through a Patient Access FHIR R4 API:
//!
//! - [`discovery`]: `.well-known/smart-configuration`, OpenID configuration, JWKS, and the
//!   plan's SMART User-access Brand Bundle;
//! - [`oauth`]: `/oauth/authorize` (the plan's own sign-in and consent pages, with the
//!   sensitive-data choice), `/oauth/token`, introspection and revocation;
//! - [`fhir`]: the FHIR API — read, search, `Patient/$everything` — limited to the token's
//!   patient, its scopes, and the member's sensitive-data choice.

rust_i18n::i18n!("locales", fallback = "en");

pub mod apps;
pub mod clients;
pub mod discovery;
pub mod fhir;
pub mod keys;
pub mod oauth;
pub mod p2p;
pub mod pages;
pub mod settings;
mod urls;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use baton_accounts::Accounts;
use baton_store::Store;
use url::Url;

pub use keys::SigningKey;
pub use settings::{BrandSettings, ClientSettings, HolderSettings};
pub use urls::Urls;

/// Paths called by other servers (never by a browser with this plan's cookies): exempt from
/// the cross-origin check that protects browser forms.
pub const SERVER_TO_SERVER_PATHS: &[&str] = &[
    "/oauth/token",
    "/oauth/introspect",
    "/oauth/revoke",
    "/fhir/Patient/$member-match",
    "/fhir/Group/$bulk-member-match",
    "/fhir/bulk-status/",
];

/// The data-holder side of one Baton.
#[derive(Clone)]
pub struct Holder(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub accounts: Accounts,
    pub plan_name: String,
    pub urls: Urls,
    pub settings: HolderSettings,
    pub key: SigningKey,
    /// For fetching clients' JWK Sets (`jwks_url`).
    pub http: reqwest::Client,
    pub jwks_cache: clients::JwksCache,
    /// When each asynchronous request under way was last polled (this instance's view).
    pub polls: p2p::jobs::Polls,
    /// Recent failed client authentications (this instance's view).
    pub client_failures: oauth::limits::ClientFailures,
}

impl std::ops::Deref for Holder {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Holder {
    pub fn new(
        store: Store,
        accounts: Accounts,
        plan_name: String,
        public_url: &Url,
        settings: HolderSettings,
        key: SigningKey,
    ) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Holder(Arc::new(Inner {
            store,
            accounts,
            plan_name,
            urls: Urls::new(public_url),
            settings,
            key,
            http,
            jwks_cache: Default::default(),
            polls: Default::default(),
            client_failures: Default::default(),
        }))
    }

    /// Registers (or updates) the client apps listed in the settings.
    pub async fn register_clients(&self) -> Result<(), clients::ClientError> {
        for client in &self.settings.clients {
            clients::register(&self.store, client).await?;
        }
        Ok(())
    }

    /// Every route of the data-holder side. Needs the session layer (for the sign-in and
    /// consent pages) and [`baton_accounts::ClientIp`] in request extensions.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/fhir/.well-known/smart-configuration", get(discovery::smart_configuration))
            .route("/fhir/.well-known/openid-configuration", get(discovery::openid_configuration))
            .route("/oauth/jwks", get(discovery::jwks))
            .route("/brands.json", get(discovery::brands))
            .route("/oauth/authorize", get(oauth::authorize::start))
            .route("/oauth/authorize/sign-in", post(oauth::authorize::sign_in))
            .route("/oauth/authorize/consent", get(oauth::authorize::consent))
            .route("/oauth/authorize/decision", post(oauth::authorize::decide))
            .route("/oauth/authorize/cancel", get(oauth::authorize::cancel))
            .route("/account/apps", get(apps::list))
            .route("/account/apps/revoke", post(apps::revoke))
            .route("/oauth/token", post(oauth::token::token))
            .route("/oauth/introspect", post(oauth::token::introspect))
            .route("/oauth/revoke", post(oauth::token::revoke))
            .route("/fhir/metadata", get(fhir::capability::metadata))
            .route("/fhir/Patient/{id}/$everything", get(fhir::everything::everything))
            .route("/fhir/Patient/$member-match", post(p2p::member_match::member_match))
            .route(
                "/fhir/Group/$bulk-member-match",
                post(p2p::bulk_match::kick_off)
                    .layer(axum::extract::DefaultBodyLimit::max(p2p::bulk_match::MAX_REQUEST_BYTES)),
            )
            .route("/fhir/Group/{id}/$davinci-data-export", post(p2p::export::kick_off))
            .route("/fhir/Group", get(p2p::groups::search))
            .route("/fhir/Group/{id}", get(p2p::groups::read))
            .route("/fhir/bulk-status/{id}", get(p2p::jobs::status).delete(p2p::jobs::cancel))
            .route("/fhir/bulk-files/{id}/{name}", get(p2p::jobs::file))
            .route("/fhir/{resource_type}", get(fhir::search::search))
            .route("/fhir/{resource_type}/{id}", get(fhir::read::read))
            .merge(self.plan_api_router())
            .with_state(self.clone())
    }

    /// The plan's own FHIR API: the same handlers, every patient, API tokens.
    fn plan_api_router(&self) -> Router<Holder> {
        Router::new()
            .route("/api/fhir/metadata", get(fhir::capability::plan_api_metadata))
            .route("/api/fhir/Patient/{id}/$everything", get(fhir::everything::everything))
            .route("/api/fhir/{resource_type}", get(fhir::search::search))
            .route("/api/fhir/{resource_type}/{id}", get(fhir::read::read))
            .layer(axum::Extension(fhir::access::PlanApi))
    }
}
