//! The payer directory from configuration: each previous plan (switched on or off there; an
//! admin's setting in the store wins, see `Directory::reload`), and this plan's registration
//! there (client id and credential, private keys read from their files).

use anyhow::Context;
use std::collections::BTreeMap;

use baton_journey::{ConfiguredPayer, Directory, Payer};
use baton_transfer::{BackendCredentials, BackendKey, ClientAuth, PayerCredentials};
use jsonwebtoken::Algorithm;
use secrecy::ExposeSecret;

use crate::config::{Config, CredentialConfig, PayerConfig};

/// The directory: every payer of `config`, and its named credentials for payers
/// staff load from brands files (see `Directory::reload`).
pub fn from_config(config: &Config, backend_key: Option<&BackendKey>) -> anyhow::Result<Directory> {
    let mut credentials = BTreeMap::new();
    for (name, credential) in &config.credentials {
        let label = format!("credential {name}");
        let auth = client_auth(&label, credential)?;
        credentials.insert(name.clone(), auth);
    }
    Ok(Directory::new(configured(config, backend_key)?, credentials))
}

/// Every configured payer. One switched off in configuration whose credential cannot be read is
/// left out with a warning (as before, a payer switched off does not stop Baton from starting),
/// so an admin cannot switch it on.
fn configured(config: &Config, backend_key: Option<&BackendKey>) -> anyhow::Result<Vec<ConfiguredPayer>> {
    let mut payers = Vec::new();
    for payer in &config.payers {
        let credentials = match credentials(payer, backend_key) {
            Ok(credentials) => credentials,
            Err(error) if !payer.enabled => {
                tracing::warn!(payer = %payer.id, error = %format!("{error:#}"), "switched-off payer left out: its credential cannot be read");
                continue;
            }
            Err(error) => return Err(error),
        };
        let configured = Payer {
            id: payer.id.clone(),
            name: payer.name.clone(),
            aliases: payer.aliases.clone(),
            states: payer.states.clone(),
            logo_url: payer.logo_url.clone(),
            fhir_base: payer.fhir_base.clone(),
            authorize_url: payer.authorize_url.clone(),
            token_url: payer.token_url.clone(),
            scopes: payer.scopes.clone(),
            credentials,
        };
        payers.push(ConfiguredPayer { payer: configured, enabled: payer.enabled });
    }
    Ok(payers)
}

fn credentials(payer: &PayerConfig, backend_key: Option<&BackendKey>) -> anyhow::Result<PayerCredentials> {
    let label = format!("payer {}", payer.id);
    let auth = client_auth(&label, &payer.credential())?;
    let backend = match (&payer.p2p_client_id, backend_key) {
        (None, _) => None,
        (Some(_), None) => anyhow::bail!(
            "{label}: p2p_client_id needs this plan's Backend Services key (secrets.backend_key, required on PostgreSQL)"
        ),
        (Some(client_id), Some(key)) => {
            for identifier in &payer.identifiers {
                let well_formed = identifier.split_once('|').is_some_and(|(s, v)| !s.is_empty() && !v.is_empty());
                anyhow::ensure!(well_formed, "{label}: identifier {identifier:?} must be system|value");
            }
            Some(BackendCredentials {
                client_id: client_id.clone(),
                key: key.clone(),
                scope: payer.p2p_scopes.clone().unwrap_or_else(baton_staff::default_scopes),
                payer_identifiers: payer.identifiers.clone(),
                token_url: payer.p2p_token_url.as_ref().map(ToString::to_string),
            })
        }
    };
    Ok(PayerCredentials {
        client_id: payer.client_id.clone(),
        auth,
        token_url: payer.token_url.as_ref().map(ToString::to_string),
        name: payer.name.clone(),
        backend,
    })
}

/// A secret, or a private key (inline or from its file) checked to be usable now, not at the
/// first refresh.
fn client_auth(label: &str, credential: &CredentialConfig) -> anyhow::Result<ClientAuth> {
    let (alg, kid) = (credential.private_key_alg.as_str(), credential.private_key_kid.as_ref());
    let pem = match (&credential.client_secret, &credential.private_key, &credential.private_key_file) {
        // `ClientAuth` (baton-transfer) holds them as plain strings.
        (Some(secret), _, _) => return Ok(ClientAuth::Secret(secret.expose_secret().to_owned())),
        (None, Some(pem), _) => pem.expose_secret().to_owned(),
        (None, None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("{label}: reading {}", path.display()))?
        }
        (None, None, None) => anyhow::bail!("{label}: no credential (client_secret, private_key or private_key_file)"),
    };
    let algorithm = match alg {
        "ES384" => Algorithm::ES384,
        _ => Algorithm::RS384,
    };
    let readable = match algorithm {
        Algorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).is_ok(),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).is_ok(),
    };
    anyhow::ensure!(readable, "{label}: the private key is not a {alg} key in PEM");
    Ok(ClientAuth::PrivateKey { pem, algorithm, kid: kid.cloned() })
}
