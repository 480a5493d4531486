//! The payer directory from configuration: each enabled previous plan, and this plan's
//! registration there (client id and credential, private keys read from their files).

use anyhow::Context;
use baton_journey::{Payer, Payers};
use baton_transfer::{ClientAuth, PayerCredentials};
use jsonwebtoken::Algorithm;

use crate::config::{Config, PayerConfig};

/// Every enabled payer of `config`.
pub fn from_config(config: &Config) -> anyhow::Result<Payers> {
    let mut payers = Vec::new();
    for payer in config.payers.iter().filter(|p| p.enabled) {
        payers.push(Payer {
            id: payer.id.clone(),
            name: payer.name.clone(),
            aliases: payer.aliases.clone(),
            states: payer.states.clone(),
            logo_url: payer.logo_url.clone(),
            fhir_base: payer.fhir_base.clone(),
            authorize_url: payer.authorize_url.clone(),
            token_url: payer.token_url.clone(),
            scopes: payer.scopes.clone(),
            credentials: credentials(payer)?,
        });
    }
    Ok(Payers::new(payers))
}

fn credentials(payer: &PayerConfig) -> anyhow::Result<PayerCredentials> {
    let auth = match (&payer.client_secret, &payer.private_key, &payer.private_key_file) {
        (Some(secret), _, _) => ClientAuth::Secret(secret.clone()),
        (None, Some(pem), _) => private_key(payer, pem.clone())?,
        (None, None, Some(path)) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("payer {}: reading {}", payer.id, path.display()))?;
            private_key(payer, pem)?
        }
        (None, None, None) => anyhow::bail!("payer {}: no credential", payer.id),
    };
    Ok(PayerCredentials {
        client_id: payer.client_id.clone(),
        auth,
        token_url: payer.token_url.as_ref().map(ToString::to_string),
        name: payer.name.clone(),
    })
}

fn private_key(payer: &PayerConfig, pem: String) -> anyhow::Result<ClientAuth> {
    let algorithm = match payer.private_key_alg.as_str() {
        "ES384" => Algorithm::ES384,
        _ => Algorithm::RS384,
    };
    // Fail at start, not at the first refresh.
    let readable = match algorithm {
        Algorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).is_ok(),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).is_ok(),
    };
    anyhow::ensure!(readable, "payer {}: the private key is not a {} key in PEM", payer.id, payer.private_key_alg);
    Ok(ClientAuth::PrivateKey { pem, algorithm, kid: payer.private_key_kid.clone() })
}
