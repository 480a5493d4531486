//! The payer directory: every previous plan members can pick, this plan's registration at
//! each, what discovery found; loading brands files, and the admins' settings.

use baton_journey::JourneyError;
use baton_store::{Account, Timestamp};
use baton_vocab::day;
use baton_vocab::views::console::{DirectoryRow, DirectoryView, PayerState, SourceRow};
use url::Url;

use super::{Console, ConsoleError, is_admin};
use crate::audit::Action;

/// A brands file, by URL or uploaded, and what loading it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrandsLoad {
    Loaded,
    /// The file could not be fetched or read (the audit log has why).
    Refused,
}

impl Console {
    /// Configured plans and brands entries, sorted by name, with the brands files they came from.
    pub async fn payer_directory(&self, staff: &Account) -> Result<DirectoryView, ConsoleError> {
        let journey = &self.journey;
        let directory = &journey.payers;
        let mut rows: Vec<DirectoryRow> = directory
            .configured()
            .into_iter()
            .map(|c| {
                let p = &c.payer;
                DirectoryRow {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    fhir_base: p.fhir_base.to_string(),
                    source: None,
                    state: if c.enabled() { PayerState::Offered } else { PayerState::Disabled },
                    client_id: Some(p.credentials.client_id.clone()),
                    credential: None,
                    enabled: c.enabled(),
                    editable: false,
                    enabled_in_config: Some(c.enabled_in_config),
                    enabled_override: c.enabled_override,
                    authorize_url: p.authorize_url.as_ref().map(ToString::to_string),
                    token_url: p.token_url.as_ref().map(ToString::to_string),
                    scopes: p.scopes.clone(),
                    discovery: journey.discovery.report(&p.id).map(|r| r.view()),
                }
            })
            .collect();
        for entry in self.store.payer_entries().await? {
            rows.push(DirectoryRow {
                state: directory.state_of(&entry),
                discovery: journey.discovery.report(&entry.id).map(|r| r.view()),
                id: entry.id,
                name: entry.name,
                fhir_base: entry.fhir_base,
                source: Some(entry.source_url),
                client_id: entry.client_id,
                credential: entry.credential,
                enabled: entry.enabled,
                editable: true,
                enabled_in_config: None,
                enabled_override: None,
                authorize_url: entry.authorize_url,
                token_url: entry.token_url,
                scopes: entry.scopes,
            });
        }
        rows.sort_by_key(|r| r.name.to_lowercase());
        let sources = self
            .store
            .brand_sources()
            .await?
            .into_iter()
            .map(|s| SourceRow {
                refreshable: s.url.starts_with("http"),
                url: s.url,
                checked_at: day::utc(s.checked_at),
                changed_at: day::utc(s.changed_at),
                status: s.status,
            })
            .collect();
        Ok(DirectoryView { admin: is_admin(staff), rows, sources, credentials: directory.credential_names() })
    }

    /// Loads (or refreshes) a brands file from its URL.
    pub async fn load_brands_url(&self, staff: &Account, url: &str) -> Result<BrandsLoad, ConsoleError> {
        let url = Url::parse(url.trim()).map_err(|_| ConsoleError::Invalid("url"))?;
        let result = self.journey.import_brands_url(&url, Timestamp::now()).await;
        let detail = match &result {
            Ok(import) if import.not_modified => "not modified".to_owned(),
            Ok(import) => format!("{} plans, {} new", import.entries, import.added),
            Err(error) => format!("failed: {error}"),
        };
        self.audit(staff, Action::PayersLoad, None, url.as_str(), &detail).await?;
        Ok(if result.is_ok() { BrandsLoad::Loaded } else { BrandsLoad::Refused })
    }

    /// Loads a brands file staff uploaded (`name` is the file's name).
    pub async fn load_brands_file(&self, staff: &Account, name: &str, text: &str) -> Result<BrandsLoad, ConsoleError> {
        let name: String = name.chars().filter(|c| !c.is_control()).take(200).collect();
        let result = self.journey.import_brands_file(&name, text, Timestamp::now()).await;
        let detail = match &result {
            Ok(import) => format!("{} plans, {} new", import.entries, import.added),
            Err(error) => format!("failed: {error}"),
        };
        self.audit(staff, Action::PayersLoad, None, &format!("file:{name}"), &detail).await?;
        match result {
            Ok(_) => Ok(BrandsLoad::Loaded),
            Err(error) => {
                tracing::warn!(%error, "brands file refused");
                Ok(BrandsLoad::Refused)
            }
        }
    }

    /// An admin enters this plan's registration at a brands entry: client id, credential name,
    /// offered to members or not.
    pub async fn register_payer(
        &self,
        admin: &Account,
        id: &str,
        client_id: &str,
        credential: &str,
        enabled: bool,
    ) -> Result<(), ConsoleError> {
        let client_id = Some(client_id.trim()).filter(|c| !c.is_empty());
        if client_id.is_some_and(|c| c.len() > 200 || c.chars().any(char::is_control)) {
            return Err(ConsoleError::Invalid("client_id"));
        }
        let credential = Some(credential.trim()).filter(|c| !c.is_empty());
        if credential.is_some_and(|c| !self.journey.payers.credential_names().iter().any(|n| n == c)) {
            return Err(ConsoleError::Invalid("credential"));
        }
        let known =
            self.journey.register_payer(id, client_id, credential, enabled, Timestamp::now()).await.map_err(failed)?;
        if !known {
            return Err(ConsoleError::NotFound);
        }
        let detail = format!(
            "client_id={} credential={} enabled={enabled}",
            client_id.unwrap_or("-"),
            credential.unwrap_or("-")
        );
        self.audit(admin, Action::PayersRegister, None, &format!("payer {id}"), &detail).await
    }

    /// An admin switches a configured payer on or off (`Some`; stored, wins over configuration)
    /// or back to what configuration says (`None`).
    pub async fn set_payer_enabled(&self, admin: &Account, id: &str, choice: Option<bool>) -> Result<(), ConsoleError> {
        let Some(configured) = self.journey.payers.configured().into_iter().find(|c| c.payer.id == id) else {
            return Err(ConsoleError::NotFound);
        };
        let known = self.journey.set_configured_payer_enabled(id, choice, Timestamp::now()).await.map_err(failed)?;
        if !known {
            return Err(ConsoleError::NotFound);
        }
        let on_off = |on: bool| if on { "on" } else { "off" };
        let detail = format!(
            "enabled={} (was {}; configuration says {})",
            choice.map_or("configuration", on_off),
            on_off(configured.enabled()),
            on_off(configured.enabled_in_config)
        );
        self.audit(admin, Action::PayersEnable, None, &format!("payer {id}"), &detail).await
    }

    /// An admin pins a brands entry's endpoints and scope override (an empty field clears it).
    pub async fn pin_payer_endpoints(
        &self,
        admin: &Account,
        id: &str,
        authorize_url: &str,
        token_url: &str,
        scopes: &str,
    ) -> Result<(), ConsoleError> {
        let now = Timestamp::now();
        let known = match self.journey.pin_payer_endpoints(id, authorize_url, token_url, scopes, now).await {
            Ok(known) => known,
            Err(JourneyError::Pinned(error)) => {
                tracing::info!(payer = %id, %error, "pinned endpoints refused");
                return Err(ConsoleError::Invalid(error.field()));
            }
            Err(error) => return Err(failed(error)),
        };
        if !known {
            return Err(ConsoleError::NotFound);
        }
        let shown = |value: &str| if value.trim().is_empty() { "-".to_owned() } else { value.trim().to_owned() };
        let detail =
            format!("authorize_url={} token_url={} scopes={}", shown(authorize_url), shown(token_url), shown(scopes));
        self.audit(admin, Action::PayersEndpoints, None, &format!("payer {id}"), &detail).await
    }

    /// Runs discovery for one payer now; `Some(problem)` when members cannot use it.
    pub async fn check_payer(&self, id: &str) -> Option<String> {
        self.journey.check_payer(id).await
    }
}

fn failed(error: JourneyError) -> ConsoleError {
    ConsoleError::Failed(error.to_string())
}
