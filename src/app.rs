//! The composition root: opens the store, registers the start-up tokens, and starts HTTP. `main` and the
//! integration tests both start the server through here.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Server;

use crate::clock::{Clock, SystemClock};
use crate::http::{AppState, HttpConfig, server};
use crate::rules::Engine;
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
    /// Open a store that fails its start-up check anyway, taking what it holds as the truth.
    pub accept_data_loss: bool,
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
            accept_data_loss: false,
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

pub fn open_store(data: &Path, durability: DurabilityMode, clock: Arc<dyn Clock>) -> StoreResult<Store> {
    Store::open(StoreOptions { path: data.to_path_buf(), durability, clock })
}

/// Opens the server's store: refused when it fails its start-up check, unless data loss is accepted.
fn open_server_store(settings: &Settings, clock: Arc<dyn Clock>) -> StoreResult<Store> {
    let on_damage = if settings.accept_data_loss { OnDamage::AcceptLoss } else { OnDamage::Refuse };
    let options = StoreOptions { path: settings.data.clone(), durability: settings.durability, clock };
    Ok(Store::open_with(options, on_damage)?.0)
}

/// On a store without any token (a first start, even after `account create`): creates account `default` if
/// needed, with one SCIM and one admin token, and returns them, so that the server can always be reached.
/// A store that holds users or groups is never a first start: it gets no new tokens.
/// Always: registers the tokens given in the settings for `default`.
pub fn bootstrap(store: &Store, settings: &Settings) -> StoreResult<Vec<NewToken>> {
    let mut created = Vec::new();
    let tokenless = store.tokens(None)?.is_empty();
    if tokenless && store.holds_resources()? {
        log::warn!("the store has no tokens; create one with `usersync token create`");
    } else if tokenless {
        let (account, _) = store.ensure_account(DEFAULT_ACCOUNT)?;
        for kind in [TokenKind::Scim, TokenKind::Admin] {
            let (_, secret) = store.create_token(account.id, kind, "initial", &Actor::engine())?;
            created.push(NewToken { kind, secret });
        }
    }
    for (secret, kind) in [(&settings.scim_token, TokenKind::Scim), (&settings.admin_token, TokenKind::Admin)]
    {
        if let Some(secret) = secret.as_deref().filter(|s| !s.is_empty()) {
            let (account, _) = store.ensure_account(DEFAULT_ACCOUNT)?;
            store.register_token(account.id, kind, "environment", secret, &Actor::engine())?;
        }
    }
    store.durable_blocking()?;
    Ok(created)
}

/// A server that is listening.
pub struct Running {
    pub addr: SocketAddr,
    pub server: Server,
    pub store: Store,
    pub engine: Engine,
    pub new_tokens: Vec<NewToken>,
}

/// Opens the store and binds the listener; the returned server must be awaited inside an actix system.
pub fn start(settings: &Settings) -> Result<Running, Box<dyn std::error::Error>> {
    start_with_clock(settings, Arc::new(SystemClock))
}

pub fn start_with_clock(
    settings: &Settings,
    clock: Arc<dyn Clock>,
) -> Result<Running, Box<dyn std::error::Error>> {
    let store = open_server_store(settings, clock)?;
    let new_tokens = bootstrap(&store, settings)?;
    let listener = TcpListener::bind(&settings.listen)?;
    let addr = listener.local_addr()?;
    let engine = Engine::start(store.clone())?;
    let state =
        AppState { store: store.clone(), config: settings.http.clone(), engine: Some(engine.clone()) };
    let server = server(listener, state)?;
    Ok(Running { addr, server, store, engine, new_tokens })
}
