//! The composition root: opens the store, registers the start-up tokens, and starts HTTP. `main` and the
//! integration tests both start the server through here.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Server;

use crate::clock::{Clock, SystemClock};
use crate::delivery::mail::{Mail, MailConfig};
use crate::delivery::webhooks::{WebhookConfig, Webhooks};
use crate::http::health::Readiness;
use crate::http::tls::{CertResolver, TlsFiles};
use crate::http::{AppState, HttpConfig, MailServer, metrics_server, server};
use crate::rules::Engine;
use crate::socket::LocalSocket;
use crate::store::{Actor, DurabilityMode, OnDamage, Store, StoreOptions, StoreResult, TokenKind};

/// Everything `serve` is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data: PathBuf,
    pub durability: DurabilityMode,
    pub http: HttpConfig,
    /// Registered for account `default` at start (`USERSYNC_SCIM_TOKEN`).
    pub scim_token: Option<String>,
    /// Registered for account `default` at start (`USERSYNC_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// The operator API's token (`USERSYNC_OPERATOR_TOKEN` or `--operator-token-file`); without it the
    /// operator API is not served.
    pub operator_token: Option<String>,
    /// Open a store that fails its start-up check anyway, taking what it holds as the truth.
    pub accept_data_loss: bool,
    /// How webhook deliveries are retried.
    pub webhooks: WebhookConfig,
    /// Serve HTTPS with this certificate and key (PEM); plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// A second listener serving `/metrics` without a token.
    pub metrics_listen: Option<String>,
    /// How long the server goes on serving after SIGTERM, `/readyz` answering 503, before it stops taking
    /// requests: the time a load balancer needs to notice.
    pub drain: std::time::Duration,
    /// How often history older than each account's retention is pruned.
    pub prune_every: std::time::Duration,
    /// The DNS server domain verification asks (`None`: the system's resolvers).
    pub dns_resolver: Option<SocketAddr>,
    /// The mail server welcome emails go to (`None`: they stay in the outbox, `notConfigured`).
    pub mail: Option<MailConfig>,
}

impl Settings {
    pub fn new(data: impl Into<PathBuf>) -> Settings {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data: data.into(),
            durability: DurabilityMode::Sync,
            http: HttpConfig::default(),
            scim_token: None,
            admin_token: None,
            operator_token: None,
            accept_data_loss: false,
            webhooks: WebhookConfig::default(),
            tls: None,
            metrics_listen: None,
            drain: std::time::Duration::ZERO,
            prune_every: std::time::Duration::from_secs(60),
            dns_resolver: None,
            mail: None,
        }
    }
}

/// The account a fresh store starts with.
pub const DEFAULT_ACCOUNT: &str = "default";

/// A token created at start-up, to be shown once.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub kind: TokenKind,
    pub secret: String,
}

/// Opens the store; a store whose unique-name indexes predate RFC 8265 comparison has them rebuilt.
pub fn open_store(data: &Path, durability: DurabilityMode, clock: Arc<dyn Clock>) -> StoreResult<Store> {
    let store = Store::open(StoreOptions { path: data.to_path_buf(), durability, clock })?;
    store.migrate_name_indexes()?;
    store.migrate_mail_owed()?;
    Ok(store)
}

/// Shortest secret accepted from `USERSYNC_SCIM_TOKEN` / `USERSYNC_ADMIN_TOKEN`: 32 characters, the length of
/// 16 random bytes in hex, which nobody guesses.
pub const MIN_ENV_TOKEN_LEN: usize = 32;

/// The name of the one token of each kind that the environment controls.
pub const ENV_TOKEN_NAME: &str = "environment";

/// Why the start-up settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "{0} is {1} characters long; it needs at least {MIN_ENV_TOKEN_LEN} (16 random bytes in hex, e.g. \
         `openssl rand -hex 16`)"
    )]
    ShortToken(&'static str, usize),
}

impl Settings {
    /// The environment tokens, each with its variable's name and kind; an empty value counts as unset.
    fn env_tokens(&self) -> [(&'static str, TokenKind, Option<&str>); 2] {
        fn set(s: &Option<String>) -> Option<&str> {
            s.as_deref().filter(|s| !s.is_empty())
        }
        [
            ("USERSYNC_SCIM_TOKEN", TokenKind::Scim, set(&self.scim_token)),
            ("USERSYNC_ADMIN_TOKEN", TokenKind::Admin, set(&self.admin_token)),
        ]
    }

    /// Refuses settings the server must not start with: an environment token too short to be secret.
    pub fn check(&self) -> Result<(), SettingsError> {
        let operator = ("the operator token", self.operator_token.as_deref().filter(|s| !s.is_empty()));
        let env = self.env_tokens().map(|(var, _, secret)| (var, secret));
        for (var, secret) in env.into_iter().chain([operator]) {
            if let Some(secret) = secret
                && secret.chars().count() < MIN_ENV_TOKEN_LEN
            {
                return Err(SettingsError::ShortToken(var, secret.chars().count()));
            }
        }
        Ok(())
    }
}

/// Opens the server's store: refused when it fails its start-up check, unless data loss is accepted.
fn open_server_store(settings: &Settings, clock: Arc<dyn Clock>) -> StoreResult<Store> {
    let on_damage = if settings.accept_data_loss { OnDamage::AcceptLoss } else { OnDamage::Refuse };
    let options = StoreOptions { path: settings.data.clone(), durability: settings.durability, clock };
    let store = Store::open_with(options, on_damage)?.0;
    store.migrate_name_indexes()?;
    store.migrate_mail_owed()?;
    Ok(store)
}

/// On a store without any token (a first start, even after `account create`): creates account `default` if
/// needed, with an `initial` token of each kind the environment does not provide, and returns them, so that
/// the server can always be reached. A store that holds users or groups is never a first start: it gets no
/// new tokens. Always: makes each environment variable's value the one token of its kind named
/// `environment` in `default` (a new value replaces the old one, an unset variable revokes it).
pub fn bootstrap(store: &Store, settings: &Settings) -> StoreResult<Vec<NewToken>> {
    store.finish_deletions()?;
    let mut created = Vec::new();
    let tokenless = store.tokens(None)?.is_empty();
    if tokenless && store.holds_resources()? {
        log::warn!("the store has no tokens; create one with `usersync token create`");
    } else if tokenless {
        let (account, _) = store.ensure_account(DEFAULT_ACCOUNT)?;
        for (_, kind, secret) in settings.env_tokens() {
            if secret.is_none() {
                let (_, secret) = store.create_token(account.id, kind, "initial", &Actor::engine())?;
                created.push(NewToken { kind, secret });
            }
        }
    }
    for (_, kind, secret) in settings.env_tokens() {
        sync_env_token(store, kind, secret)?;
    }
    store.durable_blocking()?;
    Ok(created)
}

/// Registers `secret` as account `default`'s `environment` token of `kind` and revokes every other one.
fn sync_env_token(store: &Store, kind: TokenKind, secret: Option<&str>) -> StoreResult<()> {
    let account = match secret {
        Some(_) => Some(store.ensure_account(DEFAULT_ACCOUNT)?.0),
        None => store.account(DEFAULT_ACCOUNT)?,
    };
    let Some(account) = account else { return Ok(()) };
    let kept = secret
        .map(|s| store.register_token(account.id, kind, ENV_TOKEN_NAME, s, &Actor::engine()))
        .transpose()?;
    let stale = store
        .tokens(Some(account.id))?
        .into_iter()
        .filter(|t| t.kind == kind && t.name == ENV_TOKEN_NAME && kept.as_ref().is_none_or(|k| k.id != t.id));
    for token in stale {
        store.revoke_token(account.id, &token.id, &Actor::engine())?;
        log::info!("revoked the previous {} token '{ENV_TOKEN_NAME}' ({})", kind.as_str(), token.id);
    }
    Ok(())
}

/// A server that is listening.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Server,
    pub store: Store,
    pub engine: Engine,
    /// The webhook sender: stopped with the engine, before the store is shut down.
    pub webhooks: Webhooks,
    /// The data directory's socket (backups); `None` when it could not be bound (logged).
    pub socket: Option<LocalSocket>,
    /// The welcome email sender: stopped like the webhook sender.
    pub mail: Mail,
    pub new_tokens: Vec<NewToken>,
    /// Marked from the moment a graceful shutdown begins.
    pub readiness: Arc<Readiness>,
    /// The served certificate, when serving HTTPS (SIGHUP reloads it).
    pub tls: Option<Arc<CertResolver>>,
    /// The `--metrics-listen` server and its address.
    pub metrics: Option<(Server, SocketAddr)>,
}

impl Running {
    /// `https` or `http`: what clients speak to [`addr`](Self::addr).
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Begins a graceful shutdown: `/readyz` answers 503 at once; after `drain` (requests are served
    /// meanwhile) the listeners stop accepting and the requests in flight finish (10 s at most).
    pub async fn shut_down(
        readiness: &Readiness,
        drain: std::time::Duration,
        handles: &[actix_web::dev::ServerHandle],
    ) {
        readiness.shutting_down();
        log::info!("shutting down: /readyz answers 503; serving {} s more, then finishing", drain.as_secs());
        actix_web::rt::time::sleep(drain).await;
        for handle in handles {
            handle.stop(true).await;
        }
    }

    /// Handles the process's signals until it stops: SIGTERM and SIGINT shut it down gracefully, SIGHUP
    /// reloads the TLS certificate (keeping the one served so far if the new one cannot be read).
    pub fn watch_signals(&self, drain: std::time::Duration) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let readiness = self.readiness.clone();
        let tls = self.tls.clone();
        let mut handles = vec![self.server.handle()];
        handles.extend(self.metrics.as_ref().map(|(s, _)| s.handle()));
        actix_web::rt::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = int.recv() => break,
                    _ = hup.recv() => match &tls {
                        Some(tls) => match tls.reload() {
                            Ok(()) => log::info!("SIGHUP: reloaded the TLS certificate"),
                            Err(e) => log::error!("SIGHUP: kept the current TLS certificate: {e}"),
                        },
                        None => log::info!("SIGHUP: no TLS certificate to reload"),
                    },
                }
            }
            Running::shut_down(&readiness, drain, &handles).await;
        });
        Ok(())
    }
}

/// Opens the store and binds the listener; the returned server must be awaited inside an actix system.
pub fn start(settings: &Settings) -> Result<Running, Box<dyn std::error::Error>> {
    start_with_clock(settings, Arc::new(SystemClock))
}

/// Makes ring the process's default TLS provider (if none is yet): rustls is built with ring (the HTTPS
/// listener's) and aws-lc-rs (reqwest's), and a client that takes the process default would otherwise
/// find two.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn start_with_clock(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Running, Box<dyn std::error::Error>> {
    settings.check()?;
    install_crypto_provider();
    let store = open_server_store(settings, clock)?;
    let new_tokens = bootstrap(&store, settings)?;
    let listener = TcpListener::bind(&settings.listen)?;
    let addr = listener.local_addr()?;
    let tls = settings.tls.clone().map(CertResolver::load).transpose()?.map(Arc::new);
    let metrics = match &settings.metrics_listen {
        Some(listen) => {
            let listener = TcpListener::bind(listen)?;
            let addr = listener.local_addr()?;
            Some((metrics_server(listener, store.clone())?, addr))
        }
        None => None,
    };
    // Installed before the first request, so that every series counts from the start.
    crate::http::observe::recorder();
    let engine = Engine::start(store.clone())?;
    let webhooks = Webhooks::start(store.clone(), settings.webhooks.clone())?;
    let mut config = settings.http.clone();
    config.operator_token = settings
        .operator_token
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(crate::http::operator::OperatorKey::from_secret);
    let readiness = Arc::new(Readiness::default());
    let mail = Mail::start(store.clone(), settings.mail.clone())?;
    let state = AppState {
        store: store.clone(),
        config,
        engine: Some(engine.clone()),
        large_writes: Default::default(),
        limits: crate::http::limits::RateLimits::new(settings.http.rate_limit),
        readiness: readiness.clone(),
        dns: Arc::new(crate::delivery::dns::TxtChecker::new(settings.dns_resolver)),
        mail: settings.mail.as_ref().map(|m| MailServer { server: m.server(), from: m.from.to_string() }),
    };
    let server = server(listener, state, tls.clone())?;
    crate::store::retention::watch(&store, settings.prune_every);
    let socket = crate::socket::serve(&store)
        .map_err(|e| {
            log::warn!(
                "no local socket in {} ({e}): `usersync backup` cannot reach this server",
                settings.data.display()
            )
        })
        .ok();
    Ok(Running { addr, server, store, engine, webhooks, mail, socket, new_tokens, readiness, tls, metrics })
}
