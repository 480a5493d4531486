//! Other plans' systems (SMART Backend Services clients of the Payer-to-Payer API): admins
//! register them, suspend and resume them, and remove those the console registered. Those
//! the configuration registers come back at every start, so they can be suspended, not removed.

use baton_holder::ClientSettings;
use baton_holder::oauth::client_credentials::OPERATION_SCOPES;
use baton_store::{Account, ClientOrigin, ClientState, OAuthClient, Timestamp};
use baton_vocab::views::console::{PayerClientRow, PayerClientsView};
use url::Url;

use super::{Console, ConsoleError};
use crate::audit::Action;

/// A registration as an admin typed it.
#[derive(Debug, Clone, Default)]
pub struct NewPayerClient {
    pub client_id: String,
    pub name: String,
    pub jwks_url: String,
    pub jwks: String,
    pub scopes: String,
    /// Its plan's identifiers, `system|value`, one per line (may be empty).
    pub identifiers: String,
}

/// The scopes a new payer client is offered: every Payer-to-Payer operation and reading what a
/// match allows.
pub fn default_scopes() -> String {
    let mut scopes: Vec<&str> = OPERATION_SCOPES.to_vec();
    scopes.push("system/*.rs");
    scopes.join(" ")
}

impl Console {
    /// Every other plan's system registered here, for the page at `fhir_base`.
    pub async fn payer_clients(&self, fhir_base: &str, token_url: &str) -> Result<PayerClientsView, ConsoleError> {
        let clients = self.store.oauth_clients().await?;
        Ok(PayerClientsView {
            fhir_base: fhir_base.to_owned(),
            token_url: token_url.to_owned(),
            default_scopes: default_scopes(),
            clients: clients.into_iter().filter(OAuthClient::is_system).map(row).collect(),
        })
    }

    /// Registers another plan's system; its keys are checked now (an inline JWK Set must parse,
    /// a URL must be https), its scopes must be system or operation scopes.
    pub async fn register_payer_client(&self, admin: &Account, new: &NewPayerClient) -> Result<(), ConsoleError> {
        let client_id = new.client_id.trim();
        if client_id.is_empty()
            || client_id.len() > 200
            || client_id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConsoleError::Invalid("client_id"));
        }
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ConsoleError::Invalid("name"));
        }
        let jwks_url = match new.jwks_url.trim() {
            "" => None,
            text => match Url::parse(text) {
                Ok(url) if url.scheme() == "https" || is_loopback(&url) => Some(url),
                _ => return Err(ConsoleError::Invalid("jwks_url")),
            },
        };
        let jwks = Some(new.jwks.trim()).filter(|j| !j.is_empty()).map(str::to_owned);
        if jwks.is_some() == jwks_url.is_some() {
            return Err(ConsoleError::Invalid("keys"));
        }
        let scopes = scopes(&new.scopes)?;
        let settings = ClientSettings {
            client_id: client_id.to_owned(),
            name: name.to_owned(),
            redirect_uris: Vec::new(),
            secret: None,
            jwks,
            jwks_url,
            scopes: scopes.clone(),
            identifiers: new.identifiers.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect(),
        };
        if settings.identifiers.iter().any(|i| !i.split_once('|').is_some_and(|(s, v)| !s.is_empty() && !v.is_empty()))
        {
            return Err(ConsoleError::Invalid("identifiers"));
        }
        let mut client = baton_holder::clients::validate(&settings, ClientOrigin::Console)
            .await
            .map_err(|_| ConsoleError::Invalid("jwks"))?;
        client.state_changed_by = Some(admin.username.clone());
        if !self.store.insert_oauth_client(&client).await? {
            return Err(ConsoleError::Invalid("client_id_taken"));
        }
        let keys = client.jwks_url.as_deref().unwrap_or("inline JWK Set");
        let detail = format!("name=\"{name}\" keys={keys} scopes={scopes}");
        self.audit(admin, Action::ClientRegister, None, &format!("client {client_id}"), &detail).await
    }

    /// Suspends, resumes or removes another plan's system. A suspended client's tokens stop
    /// working at once; removing one (registered in the console only) also cancels its
    /// unfinished bulk requests, and cannot be undone.
    pub async fn set_payer_client_state(
        &self,
        admin: &Account,
        client_id: &str,
        state: ClientState,
    ) -> Result<(), ConsoleError> {
        let client = self.store.oauth_client(client_id).await?.filter(OAuthClient::is_system);
        let Some(client) = client else {
            return Err(ConsoleError::NotFound);
        };
        if state == ClientState::Removed && client.origin == ClientOrigin::Configuration {
            return Err(ConsoleError::Invalid("configured"));
        }
        let changed = self.store.set_oauth_client_state(client_id, state, &admin.username, Timestamp::now()).await?;
        let detail = if changed { format!("{} → {state}", client.state) } else { "already removed".into() };
        self.audit(admin, Action::ClientState, None, &format!("client {client_id}"), &detail).await
    }
}

fn row(client: OAuthClient) -> PayerClientRow {
    let inline_keys = client
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).map(Vec::len))
        .unwrap_or(0);
    PayerClientRow {
        scopes: client.scopes.split_whitespace().map(str::to_owned).collect(),
        identifiers: client.identifiers().map(str::to_owned).collect(),
        client_id: client.client_id,
        name: client.name,
        jwks_url: client.jwks_url,
        inline_keys,
        state: client.state,
        origin: client.origin,
        state_changed_by: client.state_changed_by,
    }
}

/// The scopes as typed, each a system resource scope or a Payer-to-Payer operation's.
fn scopes(text: &str) -> Result<String, ConsoleError> {
    use baton_fhir::smart::{Context, Scope};
    let mut kept: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        let fits = match Scope::parse(word) {
            Scope::Resource(s) => s.context == Context::System && !s.write,
            Scope::Other(_) => OPERATION_SCOPES.contains(&word),
            _ => false,
        };
        if !fits {
            return Err(ConsoleError::Invalid("scopes"));
        }
        if !kept.contains(&word) {
            kept.push(word);
        }
    }
    if kept.is_empty() {
        return Err(ConsoleError::Invalid("scopes"));
    }
    Ok(kept.join(" "))
}

/// A JWK Set URL on this machine (a test or a second Baton beside this one) may be plain http.
fn is_loopback(url: &Url) -> bool {
    url.scheme() == "http" && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}
