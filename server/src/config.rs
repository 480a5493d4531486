//! Baton's configuration: one typed struct, read from defaults, then an optional TOML file
//! (`baton.toml`, or `--config`/`BATON_CONFIG`), then environment variables: `BATON_<KEY>`
//! (nested keys with `__`, e.g. `BATON_PLAN__NAME`) and `DATABASE_URL`.
//!
//! Invalid configuration stops Baton at start with a message naming the key and where the
//! bad value came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

/// Secrets are `SecretString`s: redacted in `Debug` output, and left out when serialized (which
/// happens only to the defaults, where there are none).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`BATON_LISTEN`).
    pub listen: SocketAddr,
    /// The URL people and other plans reach this Baton at (`BATON_PUBLIC_URL`);
    /// defaults to `http://<listen>`.
    pub public_url: Option<Url>,
    /// Where the embedded database and generated secrets live (`BATON_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`); defaults to `<data_dir>/baton.db`.
    pub database_url: Option<String>,
    /// The built site (`pkg/` with the WebAssembly, JavaScript and CSS) (`BATON_SITE_ROOT`).
    pub site_root: PathBuf,
    /// Send cookies only over HTTPS; defaults to whether `public_url` is `https`.
    pub cookie_secure: Option<bool>,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    /// Name of the session cookie (two Batons on one host need different names).
    pub session_cookie: String,
    pub log_format: LogFormat,
    pub plan: PlanConfig,
    pub secrets: SecretsConfig,
    pub sign_in: SignInConfig,
    /// The data-holder side: token lifetimes, brand, registered client apps.
    pub holder: baton_holder::HolderSettings,
    /// `baton demo` only: where the demo old plan listens (default: the next port).
    pub demo: DemoConfig,
    /// Previous plans members can bring their records from (`[[payers]]`).
    pub payers: Vec<PayerConfig>,
    /// Named credentials (`[credentials.<name>]`) staff may assign to payers loaded from
    /// brands files: the secret or key stays here; the database holds only the name.
    pub credentials: std::collections::BTreeMap<String, CredentialConfig>,
    /// The transfer engine.
    pub transfer: TransferConfig,
    /// The payer directory.
    pub directory: DirectoryConfig,
    /// Email to members.
    pub mail: MailConfig,
}

/// Email to members (an access reset today). Without a relay, messages are written to the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The SMTP relay: `smtps://user:password@host` (TLS) or `smtp://user:password@host:587?tls=required`
    /// (STARTTLS) (`BATON_MAIL__SMTP_URL`).
    #[serde(skip_serializing)]
    pub smtp_url: Option<SecretString>,
    /// The sender (`Plan Name <no-reply@plan.example>`); default `no-reply@` the public host.
    pub from: Option<String>,
}

/// The payer directory's brands files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// Let staff load brands files from private and local addresses (off: only public ones, so
    /// that a URL staff type cannot reach into the plan's own network). `baton demo` turns it on.
    pub allow_private_addresses: bool,
}

/// A previous plan, and this Baton's registration there. Its credential (a client secret or a
/// private key) lives only here, in configuration — never in the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayerConfig {
    /// Stable id (letters, digits, `-`).
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// US states it serves (two-letter codes), for the member's search.
    #[serde(default)]
    pub states: Vec<String>,
    #[serde(default)]
    pub logo_url: Option<Url>,
    pub fhir_base: Url,
    pub client_id: String,
    /// `client_secret_basic`.
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretString>,
    /// `private_key_jwt`: a PEM private key, inline or in a file.
    #[serde(default, skip_serializing)]
    pub private_key: Option<SecretString>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// `RS384` (RSA key) or `ES384` (P-384 key).
    #[serde(default = "default_key_alg")]
    pub private_key_alg: String,
    #[serde(default)]
    pub private_key_kid: Option<String>,
    /// Pinned endpoints, for plans whose discovery is missing or wrong.
    #[serde(default)]
    pub authorize_url: Option<Url>,
    #[serde(default)]
    pub token_url: Option<Url>,
    /// Scopes to request instead of the ones chosen from the plan's capabilities.
    #[serde(default)]
    pub scopes: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The Payer-to-Payer API: this plan's system's client id there (SMART Backend Services,
    /// signed with `secrets.backend_key`). Without it members can only bring records by
    /// signing in at that plan.
    #[serde(default)]
    pub p2p_client_id: Option<String>,
    /// Scopes this plan's system asks for there (default: reading what a match allows, and
    /// the member-match operations).
    #[serde(default)]
    pub p2p_scopes: Option<String>,
    /// A pinned token endpoint for this plan's system; otherwise its FHIR base's SMART
    /// configuration names it.
    #[serde(default)]
    pub p2p_token_url: Option<Url>,
    /// How a member's Consent names that plan: `system|value` (its NAIC company code,
    /// `urn:oid:2.16.840.1.113883.6.300|…`). None: by its FHIR base.
    #[serde(default)]
    pub identifiers: Vec<String>,
}

impl PayerConfig {
    /// Its credential, as a `[credentials.<name>]` table holds one. (The fields stay flat in
    /// `[[payers]]`: serde cannot flatten a table that refuses unknown keys, and a mistyped key
    /// must stop Baton at start.)
    pub fn credential(&self) -> CredentialConfig {
        CredentialConfig {
            client_secret: self.client_secret.clone(),
            private_key: self.private_key.clone(),
            private_key_file: self.private_key_file.clone(),
            private_key_alg: self.private_key_alg.clone(),
            private_key_kid: self.private_key_kid.clone(),
        }
    }
}

/// This plan's client credential at one or more previous plans: a shared secret
/// (`client_secret_basic`) or a private key (`private_key_jwt`, inline or in a file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    #[serde(default, skip_serializing)]
    pub client_secret: Option<SecretString>,
    #[serde(default, skip_serializing)]
    pub private_key: Option<SecretString>,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default = "default_key_alg")]
    pub private_key_alg: String,
    #[serde(default)]
    pub private_key_kid: Option<String>,
}

fn default_key_alg() -> String {
    "RS384".into()
}

fn enabled_by_default() -> bool {
    true
}

/// The transfer engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Run transfer workers inside `baton serve` (else only `baton transfers work` runs them).
    pub workers: bool,
    /// Transfers one process runs at once.
    pub concurrency: usize,
    /// `_count` asked for per page.
    pub page_size: u32,
    /// How long a worker's claim on a transfer lasts without renewal.
    pub lease_seconds: u64,
    /// Years of history asked for (at least 5).
    pub history_years: i32,
    /// Keep claim payment and cost-sharing amounts.
    pub keep_financial: bool,
    /// Pull again what changed, this many days after a link's last transfer completed, while
    /// the member's permission holds (0: never).
    pub repull_days: u32,
    /// Members per request to a previous plan on the Payer-to-Payer API (bulk match and export).
    pub request_batch_size: usize,
    /// The first wait between polls of a previous plan's bulk operation, in seconds (doubled
    /// each poll up to five minutes; the plan's `Retry-After` wins).
    pub request_poll_seconds: u64,
    /// Hours a previous plan may take to finish a bulk match or export before the request
    /// gives up and cancels it there.
    pub request_give_up_hours: u64,
    /// Lines of a previous plan's export files staged per commit (a restart resumes after the
    /// last commit).
    pub request_lines_per_commit: usize,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            workers: true,
            concurrency: 2,
            page_size: 1000,
            lease_seconds: 60,
            history_years: 5,
            keep_financial: false,
            repull_days: 30,
            request_batch_size: 500,
            request_poll_seconds: 2,
            request_give_up_hours: 24,
            request_lines_per_commit: 1000,
        }
    }
}

/// Settings of the embedded demo.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub old_plan_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// This plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlanConfig {
    /// The plan's name as members know it (`BATON_PLAN__NAME`).
    pub name: String,
}

/// Secret keys, base64-encoded. With SQLite they may be left out: Baton then generates them
/// once under `<data_dir>/secrets/` (mode 0600) and reuses them. With PostgreSQL they are
/// required, because every instance sharing the database must use the same keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Signs session cookies: at least 64 bytes (`BATON_SECRETS__SESSION_KEY`).
    #[serde(skip_serializing)]
    pub session_key: Option<SecretString>,
    /// Encrypts OAuth tokens at rest: exactly 32 bytes (`BATON_SECRETS__TOKEN_KEY`).
    #[serde(skip_serializing)]
    pub token_key: Option<SecretString>,
    /// Signs this plan's ID tokens: an RSA private key in PEM (`BATON_SECRETS__ID_TOKEN_KEY`).
    #[serde(skip_serializing)]
    pub id_token_key: Option<SecretString>,
    /// Signs this plan's system's assertions at other plans (the Payer-to-Payer API): an RSA
    /// (RS384) or P-384 (ES384) private key in PEM (`BATON_SECRETS__BACKEND_KEY`); its public
    /// half is published at `/p2p/jwks.json`.
    #[serde(skip_serializing)]
    pub backend_key: Option<SecretString>,
}

/// Limits on failed sign-ins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInConfig {
    pub window_minutes: u32,
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            database_url: None,
            site_root: PathBuf::from("target/site"),
            cookie_secure: None,
            trust_proxy: false,
            session_cookie: "baton_session".into(),
            log_format: LogFormat::Text,
            plan: PlanConfig::default(),
            secrets: SecretsConfig::default(),
            sign_in: SignInConfig::default(),
            holder: baton_holder::HolderSettings::default(),
            demo: DemoConfig::default(),
            payers: vec![],
            credentials: Default::default(),
            transfer: TransferConfig::default(),
            directory: DirectoryConfig::default(),
            mail: MailConfig::default(),
        }
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        Self { name: "Cedar Valley Health".into() }
    }
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self { window_minutes: 15, max_failures_per_account: 5, max_failures_per_ip: 20 }
    }
}

/// Read when present and no other file is named.
pub const DEFAULT_FILE: &str = "baton.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}` {problem}")]
    Key { key: &'static str, problem: String },
}

impl Config {
    /// Reads the configuration: `file` when given (it must exist), else `./baton.toml` when
    /// there is one; then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(file)?)
    }

    fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(file) if file.exists() => figment = figment.merge(Toml::file(file)),
            Some(file) => return Err(ConfigError::MissingFile(file.to_owned())),
            None if Path::new(DEFAULT_FILE).exists() => figment = figment.merge(Toml::file(DEFAULT_FILE)),
            None => {}
        }
        Ok(figment
            // `BATON_CONFIG` names the file; `BATON_BENCH_*` belong to `baton-bench`.
            .merge(Env::prefixed("BATON_").split("__").ignore(&["config", "bench_log", "bench_postgres"]))
            .merge(Env::raw().only(&["database_url"])))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError::Invalid(error.into_iter().map(describe).collect::<Vec<_>>().join("; ")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url
            && (!matches!(url.scheme(), "http" | "https") || url.host().is_none())
        {
            return Err(ConfigError::Key { key: "public_url", problem: format!("must be an http(s) URL, not {url}") });
        }
        if let Some(url) = &self.database_url {
            baton_store::Backend::of_url(url)
                .map_err(|e| ConfigError::Key { key: "database_url", problem: e.to_string() })?;
        }
        let cookie_ok = !self.session_cookie.is_empty()
            && self.session_cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !cookie_ok {
            return Err(ConfigError::Key { key: "session_cookie", problem: "must be letters, digits, _ or -".into() });
        }
        if self.plan.name.trim().is_empty() {
            return Err(ConfigError::Key { key: "plan.name", problem: "must not be empty".into() });
        }
        if self.transfer.history_years < 5 {
            return Err(ConfigError::Key {
                key: "transfer.history_years",
                problem: "must be at least 5 (PDex)".into(),
            });
        }
        if self.transfer.page_size == 0 || self.transfer.concurrency == 0 || self.transfer.lease_seconds < 3 {
            return Err(ConfigError::Key {
                key: "transfer",
                problem: "page_size and concurrency must be at least 1, lease_seconds at least 3".into(),
            });
        }
        let mut ids = std::collections::HashSet::new();
        for payer in &self.payers {
            if payer.id.is_empty()
                || !payer.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                || !ids.insert(&payer.id)
            {
                return Err(ConfigError::Key {
                    key: "payers.id",
                    problem: format!("{:?} must be unique: letters, digits or -", payer.id),
                });
            }
            let keys = [payer.client_secret.is_some(), payer.private_key.is_some(), payer.private_key_file.is_some()];
            if keys.iter().filter(|k| **k).count() != 1 {
                return Err(ConfigError::Key {
                    key: "payers.client_secret",
                    problem: format!(
                        "payer {}: give exactly one of client_secret, private_key or private_key_file",
                        payer.id
                    ),
                });
            }
            if !matches!(payer.private_key_alg.as_str(), "RS384" | "ES384") {
                return Err(ConfigError::Key {
                    key: "payers.private_key_alg",
                    problem: format!("payer {}: RS384 or ES384", payer.id),
                });
            }
            // The same rules as an admin's pinned endpoints and scope override in the console.
            use baton_journey::pinned::{self, Endpoint};
            for (key, which, url) in [
                ("payers.authorize_url", Endpoint::Authorization, &payer.authorize_url),
                ("payers.token_url", Endpoint::Token, &payer.token_url),
            ] {
                if let Some(url) = url
                    && let Err(error) = pinned::endpoint(which, url.as_str())
                {
                    return Err(ConfigError::Key { key, problem: format!("payer {}: {error}", payer.id) });
                }
            }
            for (key, url) in
                [("payers.fhir_base", Some(&payer.fhir_base)), ("payers.p2p_token_url", payer.p2p_token_url.as_ref())]
            {
                if let Some(url) = url
                    && !pinned::is_secure(url)
                {
                    return Err(ConfigError::Key {
                        key,
                        problem: format!("payer {}: must use https (plain http only to this machine), not {url}", payer.id),
                    });
                }
            }
            if let Some(scopes) = &payer.scopes
                && let Err(error) = pinned::scopes(scopes)
            {
                return Err(ConfigError::Key { key: "payers.scopes", problem: format!("payer {}: {error}", payer.id) });
            }
        }
        if self.sign_in.window_minutes == 0
            || self.sign_in.max_failures_per_account == 0
            || self.sign_in.max_failures_per_ip == 0
        {
            return Err(ConfigError::Key { key: "sign_in", problem: "limits and window must be at least 1".into() });
        }
        Ok(())
    }

    /// The database to use: `database_url`, or the embedded SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("baton.db").display()))
    }

    pub fn public_url(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}/", self.listen))
                .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("literal URL"))
        })
    }

    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure.unwrap_or_else(|| self.public_url().scheme() == "https")
    }

    /// The engine's settings for this plan.
    pub fn engine_config(&self) -> baton_transfer::EngineConfig {
        let mut engine = baton_transfer::EngineConfig::new(&format!("{}fhir", self.public_url()), &self.plan.name);
        engine.page_size = self.transfer.page_size;
        engine.concurrency = self.transfer.concurrency;
        engine.lease = std::time::Duration::from_secs(self.transfer.lease_seconds);
        engine.history_years = self.transfer.history_years;
        engine.keep_financial = self.transfer.keep_financial;
        engine.requests.batch_size = self.transfer.request_batch_size.max(1);
        engine.requests.poll_min = std::time::Duration::from_secs(self.transfer.request_poll_seconds.max(1));
        engine.requests.give_up_after =
            std::time::Duration::from_secs(self.transfer.request_give_up_hours.max(1) * 3600);
        engine.requests.lines_per_commit = self.transfer.request_lines_per_commit.max(1);
        engine
    }

    pub fn throttle_policy(&self) -> baton_accounts::ThrottlePolicy {
        baton_accounts::ThrottlePolicy {
            window: time::Duration::minutes(i64::from(self.sign_in.window_minutes)),
            max_failures_per_account: self.sign_in.max_failures_per_account,
            max_failures_per_ip: self.sign_in.max_failures_per_ip,
        }
    }
}

/// One figment error as "`key` (from where): problem", naming the exact environment
/// variable when the value came from one.
fn describe(error: figment::Error) -> String {
    let key = error.path.iter().map(|p| p.to_lowercase()).collect::<Vec<_>>().join(".");
    let source = match &error.metadata {
        Some(meta) if meta.name.contains("BATON_") => {
            format!("environment variable BATON_{}", error.path.join("__").to_uppercase())
        }
        Some(meta) if meta.name.contains("environment") => {
            format!("environment variable {}", error.path.join("__").to_uppercase())
        }
        Some(meta) => match &meta.source {
            Some(source) => format!("{} {source}", meta.name),
            None => meta.name.to_string(),
        },
        None => "configuration".into(),
    };
    if key.is_empty() {
        format!("{} (from {source})", error.kind)
    } else {
        format!("`{key}` (from {source}): {}", error.kind)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use figment::Jail;

    use super::*;

    /// The jail is the current directory, so `./baton.toml` is read when a test creates it.
    fn load_in_jail(_jail: &Jail) -> Result<Config, ConfigError> {
        Config::load(None)
    }

    #[test]
    fn defaults_run_the_embedded_demo() {
        Jail::expect_with(|jail| {
            let config = load_in_jail(jail).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
            assert_eq!(config.database_url(), "sqlite://data/baton.db");
            assert_eq!(config.public_url().as_str(), "http://127.0.0.1:3000/");
            assert!(!config.cookie_secure());
            Ok(())
        });
    }

    #[test]
    fn file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file("baton.toml", "listen = \"0.0.0.0:8080\"\n[plan]\nname = \"From File\"\n")?;
            jail.set_env("BATON_PLAN__NAME", "From Env");
            jail.set_env("DATABASE_URL", "postgres://baton@db/baton");
            jail.set_env("BATON_PUBLIC_URL", "https://baton.example.org");
            let config = load_in_jail(jail).unwrap();
            assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
            assert_eq!(config.plan.name, "From Env");
            assert_eq!(config.database_url(), "postgres://baton@db/baton");
            assert!(config.cookie_secure(), "https public URL means secure cookies");
            Ok(())
        });
    }

    #[test]
    fn a_bad_value_names_its_key_and_source() {
        Jail::expect_with(|jail| {
            jail.set_env("BATON_LISTEN", "not-an-address");
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("`listen`"), "{message}");
            assert!(message.contains("environment variable BATON_LISTEN"), "{message}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file("baton.toml", "[sign_in]\nwindow_minutes = \"soon\"\n")?;
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("`sign_in.window_minutes`"), "{message}");
            assert!(message.contains("baton.toml"), "names the file: {message}");
            Ok(())
        });
    }

    #[test]
    fn the_benchmark_variables_are_not_configuration() {
        Jail::expect_with(|jail| {
            jail.set_env("BATON_BENCH_LOG", "baton_transfer=debug");
            jail.set_env("BATON_BENCH_POSTGRES", "postgres://postgres@127.0.0.1/postgres");
            load_in_jail(jail).unwrap();
            jail.set_env("BATON_BENCH_LOGS", "a typo is still refused");
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("bench_logs"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        Jail::expect_with(|jail| {
            jail.create_file("baton.toml", "[plan]\nnmae = \"typo\"\n")?;
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("nmae"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn semantic_errors_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("DATABASE_URL", "mysql://root@localhost/baton");
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("database_url"), "{message}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("BATON_PUBLIC_URL", "ftp://example.org");
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("public_url"), "{message}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("BATON_SIGN_IN__MAX_FAILURES_PER_IP", "0");
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("sign_in"), "{message}");
            Ok(())
        });
    }

    #[test]
    fn payers_need_exactly_one_credential() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "baton.toml",
                "[[payers]]\nid = \"rb\"\nname = \"Riverbend\"\nfhir_base = \"https://rb.example/fhir\"\nclient_id = \"me\"\n",
            )?;
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("payers.client_secret") && message.contains("exactly one"), "{message}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file(
                "baton.toml",
                "[[payers]]\nid = \"rb\"\nname = \"Riverbend\"\nfhir_base = \"https://rb.example/fhir\"\nclient_id = \"me\"\nclient_secret = \"s3cr3t-s3cr3t-s3cr3t\"\n",
            )?;
            let config = load_in_jail(jail).unwrap();
            assert_eq!(config.payers[0].fhir_base.as_str(), "https://rb.example/fhir");
            assert!(!format!("{:?}", config.payers[0]).contains("s3cr3t"), "secrets never in debug output");
            Ok(())
        });
    }

    #[test]
    fn payer_scopes_and_endpoints_follow_the_consoles_rules() {
        let payer = "[[payers]]\nid = \"rb\"\nname = \"Riverbend\"\nfhir_base = \"https://rb.example/fhir\"\nclient_id = \"me\"\nclient_secret = \"s3cr3t-s3cr3t-s3cr3t\"\n";
        for (extra, key, says) in [
            ("scopes = \"patient/*.write openid\"", "payers.scopes", "asks to change data"),
            ("scopes = \"openid fhirUser\"", "payers.scopes", "no patient data"),
            ("scopes = \"user/*.read\"", "payers.scopes", "not a patient-level scope"),
            ("token_url = \"http://auth.rb.example/token\"", "payers.token_url", "must use https"),
            ("authorize_url = \"https://auth.rb.example/authorize#x\"", "payers.authorize_url", "#fragment"),
            ("p2p_token_url = \"http://auth.rb.example/token\"", "payers.p2p_token_url", "must use https"),
        ] {
            Jail::expect_with(|jail| {
                jail.create_file("baton.toml", &format!("{payer}{extra}\n"))?;
                let message = load_in_jail(jail).unwrap_err().to_string();
                assert!(message.contains(key) && message.contains(says), "{extra}: {message}");
                Ok(())
            });
        }
        Jail::expect_with(|jail| {
            jail.create_file("baton.toml", &payer.replace("https://rb.example", "http://rb.example"))?;
            let message = load_in_jail(jail).unwrap_err().to_string();
            assert!(message.contains("payers.fhir_base") && message.contains("must use https"), "{message}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.create_file(
                "baton.toml",
                &format!(
                    "{payer}scopes = \"launch/patient openid patient/*.rs\"\ntoken_url = \"http://127.0.0.1:9/token\"\n"
                ),
            )?;
            let config = load_in_jail(jail).unwrap();
            assert_eq!(config.payers[0].scopes.as_deref(), Some("launch/patient openid patient/*.rs"));
            Ok(())
        });
    }

    #[test]
    fn a_named_config_file_must_exist() {
        let err = Config::load(Some(Path::new("/nonexistent/baton-prod.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)), "{err}");
    }

    #[test]
    fn secrets_are_read_from_file_and_environment_but_never_shown() {
        use secrecy::ExposeSecret;
        Jail::expect_with(|jail| {
            let file = "[secrets]\ntoken_key = \"dG9rZW4=\"\n[credentials.shared]\nclient_secret = \"s3cr3t\"\n";
            jail.create_file("baton.toml", file)?;
            jail.set_env("BATON_SECRETS__SESSION_KEY", "c2Vzc2lvbg==");
            let config = load_in_jail(jail).unwrap();
            assert_eq!(config.secrets.token_key.as_ref().map(|k| k.expose_secret()), Some("dG9rZW4="));
            assert_eq!(config.secrets.session_key.as_ref().map(|k| k.expose_secret()), Some("c2Vzc2lvbg=="));
            let shared = config.credentials["shared"].client_secret.as_ref().map(|s| s.expose_secret());
            assert_eq!(shared, Some("s3cr3t"));
            let shown = format!("{config:?}");
            assert!(!["dG9rZW4=", "c2Vzc2lvbg==", "s3cr3t"].iter().any(|s| shown.contains(s)), "{shown}");
            Ok(())
        });
    }
}
