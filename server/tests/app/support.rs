//! What every test here shares: a configuration with fixed keys, a client.

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine as _;
use server::config::Config;

pub const PASSWORD: &str = "a long test password";

/// One RSA key for every app of the process: generating one per app took most of a debug
/// build's start-up.
pub fn id_token_key() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| baton_holder::SigningKey::generate_pem().expect("an RSA key"))
}

/// An app on a free port with its data under `dir`, and fixed keys.
pub fn config(dir: &Path) -> Config {
    let mut config = Config { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.to_owned(), ..Config::default() };
    let base64 = base64::engine::general_purpose::STANDARD;
    config.secrets.session_key = Some(base64.encode([7u8; 64]).into());
    config.secrets.token_key = Some(base64.encode([9u8; 32]).into());
    config.secrets.id_token_key = Some(id_token_key().into());
    // Any RSA key will do for this plan's system at other plans (generating one takes a while).
    config.secrets.backend_key = Some(id_token_key().into());
    // Brands files in these tests are served on loopback.
    config.directory.allow_private_addresses = true;
    config
}

/// A client that follows no redirects; a hung request fails its test instead of the suite.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The text of `url`, fetched with `cookie` (a session or a preference).
pub async fn text(url: &str, cookie: &str) -> String {
    client().get(url).header("cookie", cookie).send().await.unwrap().text().await.unwrap()
}

/// A member born 1984-03-12 whose coverage starts today (the time to bring records runs until
/// 90 days after), with [`PASSWORD`].
pub fn member(username: &str, name: &str, member_id: &str) -> baton_accounts::NewMember {
    baton_accounts::NewMember {
        username: baton_accounts::Username::parse(username).unwrap(),
        display_name: name.into(),
        password: Some(baton_accounts::NewPassword::parse(PASSWORD).unwrap()),
        member_id: member_id.into(),
        birth_date: time::macros::date!(1984 - 03 - 12),
        coverage_start: time::OffsetDateTime::now_utc().date(),
    }
}
