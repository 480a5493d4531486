//! The payer directory as the transfer engine sees it: each previous plan's registration
//! (client id and credential), from configuration.

use std::collections::HashMap;

use anyhow::Context;
use baton_transfer::{ClientAuth, PayerCredentials, PayerDirectory};
use jsonwebtoken::Algorithm;

use crate::config::{Config, PayerConfig};

/// Credentials by payer id.
#[derive(Debug, Clone, Default)]
pub struct ConfiguredPayers(HashMap<String, PayerCredentials>);

impl ConfiguredPayers {
    /// Reads every enabled payer's credential (private keys from their files).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut payers = HashMap::new();
        for payer in config.payers.iter().filter(|p| p.enabled) {
            payers.insert(payer.id.clone(), credentials(payer)?);
        }
        Ok(Self(payers))
    }
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

impl PayerDirectory for ConfiguredPayers {
    fn credentials(&self, payer_id: &str) -> Option<PayerCredentials> {
        self.0.get(payer_id).cloned()
    }
}
