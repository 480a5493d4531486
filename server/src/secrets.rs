//! Secret keys: from configuration, or — for the embedded SQLite setup — generated once under
//! `<data_dir>/secrets/` with owner-only permissions and reused on every start.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::RngCore;
use thiserror::Error;

use crate::config::Config;

/// Minimum length of the cookie-signing key (what `tower-cookies`' `Key` requires).
pub const SESSION_KEY_MIN_LEN: usize = 64;
/// Length of the AEAD key for tokens at rest.
pub const TOKEN_KEY_LEN: usize = 32;

#[derive(Clone)]
pub struct Secrets {
    pub session_key: Vec<u8>,
    pub token_key: [u8; TOKEN_KEY_LEN],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(***)")
    }
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
            Some(text) => decode("secrets.session_key", text)?,
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
            Some(text) => decode("secrets.token_key", text)?,
            None if embedded => file_key(&config.data_dir, "token.key", TOKEN_KEY_LEN)?,
            None => return Err(SecretsError::Required { key: "secrets.token_key", env: "SECRETS__TOKEN_KEY" }),
        };
        let token_key: [u8; TOKEN_KEY_LEN] = token_key.try_into().map_err(|k: Vec<u8>| SecretsError::Invalid {
            key: "secrets.token_key",
            problem: format!("must be exactly {TOKEN_KEY_LEN} bytes, got {}", k.len()),
        })?;
        Ok(Self { session_key, token_key })
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
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => {
                file.write_all(BASE64.encode(&key).as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                return Ok(key);
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
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
        assert_eq!(first.session_key, second.session_key);
        assert_eq!(first.token_key, second.token_key);
        assert!(first.session_key.len() >= SESSION_KEY_MIN_LEN);
        assert_ne!(first.token_key, [0; TOKEN_KEY_LEN]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["session.key", "token.key"] {
                let mode = fs::metadata(dir.path().join("secrets").join(name)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
        }
    }

    #[test]
    fn configured_keys_are_used_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        config.secrets.session_key = Some(BASE64.encode([7u8; 64]));
        config.secrets.token_key = Some(BASE64.encode([9u8; 32]));
        let secrets = Secrets::load(&config).unwrap();
        assert_eq!(secrets.token_key, [9u8; 32]);
        assert!(!dir.path().join("secrets").exists(), "nothing generated when configured");

        config.secrets.token_key = Some(BASE64.encode([9u8; 16]));
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
