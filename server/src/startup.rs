//! Building the application: store, services, router, listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::ssr::Services;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use baton_accounts::Accounts;
use baton_holder::{Holder, SERVER_TO_SERVER_PATHS, SigningKey};
use baton_store::{ConnectOptions, Db, Store};
use baton_transfer::{Engine, TokenCipher};
use leptos::config::LeptosOptions;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{AxumRouteListing, LeptosRoutes, file_and_error_handler_with_context, generate_route_list};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_sessions::cookie::Key;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};
use url::Url;

use crate::config::Config;
use crate::http::{callback, client_ip, health, live, locale, panic, security, staff, trace};
use crate::payers;
use crate::secrets::Secrets;
use baton_journey::{Directory, Discovery, Journey};

/// Router state: what plain axum handlers need; Leptos gets [`Services`] as context.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Services,
    /// For the health check.
    pub store: Store,
}

/// A built, bound, not yet running Baton.
pub struct Application {
    listener: TcpListener,
    router: Router,
    services: Services,
    store: Store,
    holder: Holder,
    engine: Engine,
    mailer: baton_mail::Mailer,
    run_workers: bool,
    /// Days after which a link's records are pulled again (0: never).
    repull_days: u32,
    public_url: Url,
    local_addr: SocketAddr,
}

/// The transfer engine for `config`.
pub async fn engine(config: &Config, store: &Store, secrets: &Secrets) -> anyhow::Result<Engine> {
    let directory = payers::from_config(config, backend_key(secrets)?.as_ref())?;
    directory.reload(store).await.context("reading the payer directory")?;
    tokio::spawn(directory.clone().keep_current(store.clone(), DIRECTORY_CHECK));
    Ok(engine_with(config, store, secrets, directory))
}

fn engine_with(config: &Config, store: &Store, secrets: &Secrets, payers: Directory) -> Engine {
    let cipher = TokenCipher::new(secrets.token_key.expose_secret());
    Engine::new(store.clone(), cipher, config.engine_config(), Arc::new(payers))
}

/// Email to members: through the configured relay, else to the log.
fn mailer(config: &Config, public_url: &Url) -> anyhow::Result<baton_mail::Mailer> {
    let from = match &config.mail.from {
        Some(from) => from.clone(),
        None => {
            let host = public_url.domain().filter(|d| d.contains('.')).unwrap_or("localhost");
            format!("{} <no-reply@{host}>", config.plan.name.replace(['<', '>', '"', ','], ""))
        }
    };
    let mailer = match &config.mail.smtp_url {
        Some(url) => baton_mail::Mailer::smtp(url, &from),
        None => baton_mail::Mailer::log_only(&from),
    };
    mailer.context("invalid configuration: `mail`")
}

/// This plan's system's key at other plans, when it has one.
fn backend_key(secrets: &Secrets) -> anyhow::Result<Option<baton_transfer::BackendKey>> {
    let Some(pem) = &secrets.backend_key else { return Ok(None) };
    Ok(Some(baton_transfer::BackendKey::from_pem(pem.expose_secret())?))
}

/// How often the periodic pulls that are due are queued.
const PULLS_CHECK: Duration = Duration::from_secs(600);

/// Queues the periodic pulls that are due, every [`PULLS_CHECK`]. Two instances looking at the
/// same moment may both queue one for a link: the records stay as they are (a pull writes each
/// record once), only the work is done twice.
async fn queue_pulls(journey: Journey, every: time::Duration) {
    let mut tick = tokio::time::interval(PULLS_CHECK);
    loop {
        tick.tick().await;
        if let Err(error) = journey.queue_due_pulls(every, baton_store::Timestamp::now()).await {
            tracing::warn!(%error, "periodic pulls could not be queued");
        }
    }
}

/// How often an instance checks whether another changed the payer directory in the database.
const DIRECTORY_CHECK: Duration = Duration::from_secs(30);

/// How long a previous plan's SMART configuration is reused before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// The member journey, sharing the engine's payer directory, HTTP client and token key.
fn journey(config: &Config, engine: &Engine, payers: Directory, public_url: &Url) -> anyhow::Result<Journey> {
    Ok(Journey::new(baton_journey::Inner {
        store: engine.store.clone(),
        cipher: engine.cipher.clone(),
        http: engine.http.clone(),
        discovery: Discovery::new(engine.http.clone(), DISCOVERY_TTL),
        payers,
        redirect_uri: public_url.join("oauth/callback")?,
        local_base: engine.config.local_base.clone(),
        plan_name: config.plan.name.clone(),
        identifiers: config.holder.identifiers.clone(),
        allow_private_brands: config.directory.allow_private_addresses,
    }))
}

/// How long an idle session lasts.
const SESSION_IDLE: time::Duration = time::Duration::hours(8);

/// Connects to the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    let store = Store::connect(&url, &ConnectOptions::default())
        .await
        .with_context(|| format!("cannot open the database {}", baton_store::redact_url(&url)))?;
    store.migrate().await.context("cannot apply database migrations")?;
    Ok(store)
}

impl Application {
    pub async fn build(mut config: Config) -> anyhow::Result<Self> {
        let secrets = Secrets::load(&config)?;
        let store = open_store(&config).await?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{local_addr}/"))?,
        };
        // Listening on port 0, the address is known only now: everything says the real one.
        config.public_url = Some(public_url.clone());

        let accounts = Accounts::new(store.clone(), config.throttle_policy());
        // The payer directory is read once (private keys from their files) and shared.
        // Configured payers plus the brands entries staff registered; shared, and rebuilt
        // when staff change an entry.
        let backend_key = backend_key(&secrets)?;
        let payers = payers::from_config(&config, backend_key.as_ref())?;
        payers.reload(&store).await.context("reading the payer directory")?;
        let engine = engine_with(&config, &store, &secrets, payers.clone());
        engine.upgrade_stored_records().await.context("upgrading stored records")?;
        let enrollment = baton_enrollment::Enrollment {
            store: store.clone(),
            accounts: accounts.clone(),
            invitations: baton_enrollment::Invitations::new(store.clone(), engine.cipher.clone(), public_url.as_str()),
            local_base: engine.config.local_base.clone(),
            plan_name: config.plan.name.clone(),
        };
        let journey = journey(&config, &engine, payers, &public_url)?;
        let mailer = mailer(&config, &public_url)?;
        let services = Services {
            accounts: accounts.clone(),
            plan_name: config.plan.name.clone(),
            console: baton_staff::Console::new(store.clone(), journey.clone(), enrollment.clone(), mailer.clone()),
            journey,
            enrollment,
            local_base: engine.config.local_base.clone(),
        };
        let holder = Holder::new(
            store.clone(),
            accounts,
            config.plan.name.clone(),
            &public_url,
            config.holder.clone(),
            SigningKey::from_pem(secrets.id_token_key.expose_secret())?,
        );
        holder.register_clients().await.context("registering the configured client apps")?;
        let leptos_options = LeptosOptions::builder()
            .output_name(app::OUTPUT_NAME)
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(local_addr)
            .build();
        let state = AppState { leptos_options: leptos_options.clone(), services: services.clone(), store: store.clone() };

        let routes = routes();
        let context = {
            let services = services.clone();
            move || {
                provide_context(services.clone());
                // The nonce the security headers name in this response's policy (replacing the
                // one Leptos made up), so the hydration scripts carry it.
                let nonce = use_context::<http::request::Parts>()
                    .and_then(|parts| parts.extensions.get::<security::CspNonce>().cloned());
                if let Some(nonce) = nonce {
                    provide_context(leptos::nonce::Nonce::from_value(nonce.0));
                }
            }
        };
        let shell = move |options: LeptosOptions| app::shell(options);
        let router = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/locale/{locale}", get(locale::set_locale))
            .route("/oauth/callback", get(callback::oauth_callback))
            .route("/member/transfers/{id}/live", get(live::transfer_progress))
            .route(
                "/staff/roster",
                axum::routing::post(staff::upload_roster)
                    .layer(axum::extract::DefaultBodyLimit::max(staff::ROSTER_MAX_BYTES)),
            )
            .route("/staff/audit.csv", get(staff::export_audit))
            .route("/p2p/jwks.json", get(crate::http::p2p::jwks).with_state(backend_key.clone()))
            .route(
                "/staff/payers/brands",
                axum::routing::post(staff::upload_brands)
                    .layer(axum::extract::DefaultBodyLimit::max(staff::BRANDS_MAX_BYTES)),
            )
            .leptos_routes_with_context(&state, routes, context.clone(), {
                let options = leptos_options.clone();
                move || shell(options.clone())
            })
            .fallback(file_and_error_handler_with_context::<AppState, _>(context, shell))
            .with_state(state)
            .merge(holder.router());

        let router = with_sessions(router, &store, &secrets, &config.session_cookie, config.cookie_secure());
        let origin = public_url.origin().ascii_serialization();
        let router = router
            .layer(axum::middleware::from_fn_with_state(
                client_ip::TrustProxy(config.trust_proxy),
                client_ip::client_ip,
            ))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(security::OriginPolicy {
                    origin,
                    exempt_prefixes: SERVER_TO_SERVER_PATHS.iter().map(|p| (*p).to_owned()).collect(),
                }),
                security::cross_origin_protection,
            ))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(security::HeaderPolicy {
                    hsts: public_url.scheme() == "https",
                    form_targets: {
                        let journey = services.journey.clone();
                        Arc::new(move || journey.form_targets())
                    },
                }),
                security::security_headers,
            ))
            .layer(CatchPanicLayer::custom(panic::panic_response))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(trace::layer())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

        Ok(Self {
            listener,
            router,
            services,
            store,
            holder,
            engine,
            mailer,
            run_workers: config.transfer.workers,
            repull_days: config.transfer.repull_days,
            public_url,
            local_addr,
        })
    }

    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Email to members (what the log-only mailer kept, in tests and the demo).
    pub fn mailer(&self) -> &baton_mail::Mailer {
        &self.mailer
    }

    /// The data-holder side (its FHIR base, registered clients…).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Serves (and runs transfer workers) until SIGTERM or Ctrl-C, then finishes in-flight
    /// requests, lets the workers stop, and closes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let store = self.store.clone();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = self.run_workers.then(|| tokio::spawn(self.engine.clone().run(stopped)));
        let journey = self.services.journey.clone();
        if self.run_workers && self.repull_days > 0 {
            tokio::spawn(queue_pulls(journey.clone(), time::Duration::days(i64::from(self.repull_days))));
        }
        tokio::spawn(journey.payers.clone().keep_current(store.clone(), DIRECTORY_CHECK));
        tokio::spawn(async move {
            // Give a previous plan starting alongside (the demo's) a moment to listen.
            tokio::time::sleep(Duration::from_secs(2)).await;
            journey.warm_up().await;
        });
        let result = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown_signal())
            .await;
        let _ = stop.send(true);
        if let Some(workers) = workers {
            // A worker in the middle of a page finishes it; its transfer resumes on restart.
            let _ = tokio::time::timeout(Duration::from_secs(10), workers).await;
        }
        store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// The app's routes, listed once per process.
///
/// Listing them renders the app with resource loading switched off by a process-wide flag
/// (`leptos_server`'s `SuppressResourceLoad`): a page that starts its first resource meanwhile —
/// in any app of the process — waits for good (leptos-rs/leptos#4773). `baton demo` builds two
/// apps in one process, the second while the first serves; so does every test binary.
fn routes() -> Vec<AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

/// Adds the session layer, backed by the same database as everything else.
fn with_sessions(router: Router, store: &Store, secrets: &Secrets, cookie: &str, secure: bool) -> Router {
    let key = Key::from(secrets.session_key.expose_secret());
    match store.db() {
        Db::Sqlite(pool) => {
            let sessions = SqliteStore::new(pool.clone());
            spawn_expired_session_cleanup(sessions.clone());
            router.layer(session_layer(sessions, key, cookie, secure))
        }
        Db::Postgres(pool) => {
            let sessions = PostgresStore::new(pool.clone())
                .with_schema_name("public")
                .and_then(|s| s.with_table_name("tower_sessions"))
                .expect("static, valid schema and table names");
            spawn_expired_session_cleanup(sessions.clone());
            router.layer(session_layer(sessions, key, cookie, secure))
        }
    }
}

fn session_layer<S: SessionStore + Clone>(
    store: S,
    key: Key,
    cookie: &str,
    secure: bool,
) -> SessionManagerLayer<S, tower_sessions::service::SignedCookie> {
    SessionManagerLayer::new(store)
        .with_name(cookie.to_owned())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE))
        .with_signed(key)
}

fn spawn_expired_session_cleanup<S>(store: S)
where
    S: tower_sessions::ExpiredDeletion + Clone + Send + Sync + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = store.continuously_delete_expired(Duration::from_secs(300)).await {
            tracing::warn!(%error, "expired-session cleanup stopped");
        }
    });
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
