//! Secret keys: from configuration, or — for the embedded SQLite setup — generated once under
//! `<data_dir>/secrets/` with owner-only permissions and reused on every start.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretSlice, SecretString};
use thiserror::Error;

use crate::config::Config;

/// Minimum length of the cookie-signing key (what `tower-cookies`' `Key` requires).
pub const SESSION_KEY_MIN_LEN: usize = 64;
/// Length of the AEAD key for tokens at rest.
pub const TOKEN_KEY_LEN: usize = 32;

/// The keys in use (redacted in `Debug` output, wiped from memory when dropped).
#[derive(Debug)]
pub struct Secrets {
    pub session_key: SecretSlice<u8>,
    pub token_key: SecretBox<[u8; TOKEN_KEY_LEN]>,
    /// RSA private key (PEM) signing this plan's ID tokens.
    pub id_token_key: SecretString,
    /// The private key (PEM) of this plan's system at other plans (the Payer-to-Payer API); on
    /// PostgreSQL only when configured.
    pub backend_key: Option<SecretString>,
}

#[derive(Debug, Error)]
pub enum SecretsError {
    #[error("invalid configuration: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
    #[error(
        "`{key}` is required when DATABASE_URL is PostgreSQL: every Baton instance sharing the database must use the same key (set BATON_{env})"
    )]
    Required { key: &'static str, env: &'static str },
    #[error("cannot read or write the secret file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
}

impl Secrets {
    pub fn load(config: &Config) -> Result<Self, SecretsError> {
        let embedded = config.database_url().starts_with("sqlite:");
        let session_key = match &config.secrets.session_key {
            Some(text) => decode("secrets.session_key", text.expose_secret())?,
            None if embedded => file_key(&config.data_dir, "session.key", SESSION_KEY_MIN_LEN)?,
            None => return Err(SecretsError::Required { key: "secrets.session_key", env: "SECRETS__SESSION_KEY" }),
        };
        if session_key.len() < SESSION_KEY_MIN_LEN {
            return Err(SecretsError::Invalid {
                key: "secrets.session_key",
                problem: format!("must be at least {SESSION_KEY_MIN_LEN} bytes, got {}", session_key.len()),
            });
        }
        let token_key = match &config.secrets.token_key {
            Some(text) => decode("secrets.token_key", text.expose_secret())?,
            None if embedded => file_key(&config.data_dir, "token.key", TOKEN_KEY_LEN)?,
            None => return Err(SecretsError::Required { key: "secrets.token_key", env: "SECRETS__TOKEN_KEY" }),
        };
        let token_key: [u8; TOKEN_KEY_LEN] = token_key.try_into().map_err(|k: Vec<u8>| SecretsError::Invalid {
            key: "secrets.token_key",
            problem: format!("must be exactly {TOKEN_KEY_LEN} bytes, got {}", k.len()),
        })?;
        let id_token_key = match &config.secrets.id_token_key {
            Some(pem) => pem.expose_secret().to_owned(),
            None if embedded => file_pem(&config.data_dir, "id-token.pem")?,
            None => return Err(SecretsError::Required { key: "secrets.id_token_key", env: "SECRETS__ID_TOKEN_KEY" }),
        };
        baton_holder::SigningKey::from_pem(&id_token_key)
            .map_err(|e| SecretsError::Invalid { key: "secrets.id_token_key", problem: e.to_string() })?;
        let backend_key = match &config.secrets.backend_key {
            Some(pem) => Some(pem.expose_secret().to_owned()),
            None if embedded => Some(file_pem(&config.data_dir, "backend.pem")?),
            None => None,
        };
        if let Some(pem) = &backend_key {
            baton_transfer::BackendKey::from_pem(pem)
                .map_err(|e| SecretsError::Invalid { key: "secrets.backend_key", problem: e.to_string() })?;
        }
        Ok(Self {
            session_key: session_key.into(),
            token_key: Box::new(token_key).into(),
            id_token_key: id_token_key.into(),
            backend_key: backend_key.map(Into::into),
        })
    }
}

/// Reads `<data_dir>/secrets/<name>`, generating an RSA key there (mode 0600) first when missing.
fn file_pem(data_dir: &Path, name: &str) -> Result<String, SecretsError> {
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    let io = |source| SecretsError::File { path: path.clone(), source };
    if !path.exists() {
        create_private_dir(&dir).map_err(io)?;
        let pem = baton_holder::SigningKey::generate_pem().map_err(|e| io(std::io::Error::other(e.to_string())))?;
        write_private(&path, pem.as_bytes()).map_err(io)?;
    }
    fs::read_to_string(&path).map_err(io)
}

/// Writes a new file only its owner can read; if another process created it first, keeps theirs.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(contents)?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn decode(key: &'static str, text: &str) -> Result<Vec<u8>, SecretsError> {
    BASE64.decode(text.trim()).map_err(|e| SecretsError::Invalid { key, problem: format!("is not valid base64: {e}") })
}

/// Reads `<data_dir>/secrets/<name>`, creating it with `len` random bytes (mode 0600) first
/// when it does not exist.
fn file_key(data_dir: &Path, name: &str, len: usize) -> Result<Vec<u8>, SecretsError> {
    let dir = data_dir.join("secrets");
    let path = dir.join(name);
    let io = |source| SecretsError::File { path: path.clone(), source };
    if !path.exists() {
        create_private_dir(&dir).map_err(io)?;
        let mut key = vec![0u8; len];
        rand::rng().fill_bytes(&mut key);
        write_private(&path, BASE64.encode(&key).as_bytes()).map_err(io)?;
    }
    let text = fs::read_to_string(&path).map_err(io)?;
    BASE64.decode(text.trim()).map_err(|e| SecretsError::File {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        Config { data_dir: dir.to_owned(), ..Config::default() }
    }

    #[test]
    fn generated_once_with_owner_only_permissions_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secrets::load(&config_in(dir.path())).unwrap();
        let second = Secrets::load(&config_in(dir.path())).unwrap();
        assert_eq!(first.session_key.expose_secret(), second.session_key.expose_secret());
        assert_eq!(first.token_key.expose_secret(), second.token_key.expose_secret());
        assert_eq!(first.id_token_key.expose_secret(), second.id_token_key.expose_secret());
        let backend = |s: &Secrets| s.backend_key.as_ref().map(|k| k.expose_secret().to_owned());
        assert!(backend(&first).is_some() && backend(&first) == backend(&second));
        assert!(first.session_key.expose_secret().len() >= SESSION_KEY_MIN_LEN);
        assert_ne!(first.token_key.expose_secret(), &[0; TOKEN_KEY_LEN]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["session.key", "token.key", "id-token.pem", "backend.pem"] {
                let mode = fs::metadata(dir.path().join("secrets").join(name)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        }
    }

    #[test]
    fn configured_keys_are_used_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        config.secrets.session_key = Some(BASE64.encode([7u8; 64]).into());
        config.secrets.token_key = Some(BASE64.encode([9u8; 32]).into());
        let pem = baton_holder::SigningKey::generate_pem().unwrap();
        config.secrets.id_token_key = Some(pem.clone().into());
        config.secrets.backend_key = Some(pem.into());
        let secrets = Secrets::load(&config).unwrap();
        assert_eq!(secrets.token_key.expose_secret(), &[9u8; 32]);
        let shown = format!("{secrets:?}");
        assert!(!shown.contains(&BASE64.encode([9u8; 32])) && !shown.contains("9, 9"), "{shown}");
        assert!(!dir.path().join("secrets").exists(), "nothing generated when configured");

        config.secrets.backend_key = Some("not a key".into());
        assert!(Secrets::load(&config).unwrap_err().to_string().contains("secrets.backend_key"));
        config.secrets.id_token_key = Some("not a key".into());
        assert!(Secrets::load(&config).unwrap_err().to_string().contains("secrets.id_token_key"));
        config.secrets.id_token_key = None;
        config.secrets.token_key = Some(BASE64.encode([9u8; 16]).into());
        let message = Secrets::load(&config).unwrap_err().to_string();
        assert!(message.contains("secrets.token_key") && message.contains("32"), "{message}");
        config.secrets.token_key = Some("not base64!".into());
        assert!(Secrets::load(&config).unwrap_err().to_string().contains("secrets.token_key"));
    }

    #[test]
    fn postgres_requires_configured_keys() {
        let config = Config { database_url: Some("postgres://u@h/db".into()), ..Config::default() };
        let message = Secrets::load(&config).unwrap_err().to_string();
        assert!(message.contains("secrets.session_key"), "{message}");
        assert!(message.contains("BATON_SECRETS__SESSION_KEY"), "{message}");
    }
}
