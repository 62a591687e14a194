//! The `usersync` command: `serve` (the default), the account, token and domain subcommands, and `verify` and
//! `compact` for a stopped store.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use usersync::app::{self, DEFAULT_ACCOUNT, Settings};
use usersync::clock::SystemClock;
use usersync::http::HttpConfig;
use usersync::store::{DurabilityMode, OnDamage, Store, StoreError, StoreOptions, TokenKind};

#[derive(Parser)]
#[command(name = "usersync", version, about = "SCIM 2.0 provisioning endpoint with a User Sync rule engine")]
struct Cli {
    /// Data directory of the embedded store.
    #[arg(long, env = "USERSYNC_DATA", default_value = "./usersync-data", global = true)]
    data: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Manage accounts (on a stopped server's data directory, or with --url through a running server).
    Account(AccountArgs),
    /// Manage bearer tokens (on a stopped server's data directory, or with --url through a running server).
    Token(TokenArgs),
    /// Manage verified domains (on a stopped server's data directory).
    #[command(subcommand)]
    Domain(DomainCommand),
    /// Check a stopped server's store: checksums, the start-up check, indexes against records,
    /// memberships both ways, seats against holders. Exits 1 when anything is wrong.
    Verify,
    /// Rewrite a stopped server's store with only its live records, giving back the space of deleted and
    /// overwritten data.
    Compact,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "USERSYNC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// When a write is acknowledged: `sync` (on disk, survives power loss), `flush` (survives a process
    /// crash), `relaxed` (benchmarks only: may lose the last half second).
    #[arg(long, env = "USERSYNC_DURABILITY", default_value = "sync")]
    durability: DurabilityMode,
    /// Largest request body in bytes.
    #[arg(long, env = "USERSYNC_MAX_BODY", default_value_t = 1 << 20)]
    max_body: usize,
    /// Largest page a list returns (filter.maxResults).
    #[arg(long, env = "USERSYNC_MAX_RESULTS", default_value_t = 1000)]
    max_results: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "USERSYNC_WORKERS")]
    workers: Option<usize>,
    /// Address of a reverse proxy whose Forwarded / X-Forwarded-* headers are believed (repeatable).
    #[arg(long = "trusted-proxy", env = "USERSYNC_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Most operations in one PATCH.
    #[arg(long, env = "USERSYNC_MAX_OPERATIONS", default_value_t = 1000)]
    max_operations: usize,
    /// Most values of one multi-valued attribute of a user (emails, phoneNumbers, ...).
    #[arg(long, env = "USERSYNC_MAX_VALUES", default_value_t = 1000)]
    max_values: usize,
    /// Seconds a request body has to arrive in full.
    #[arg(long, env = "USERSYNC_BODY_TIMEOUT", default_value_t = 30)]
    body_timeout: u64,
    /// Slowest average rate of a request body, in bytes per second.
    #[arg(long, env = "USERSYNC_MIN_BODY_RATE", default_value_t = 1024)]
    min_body_rate: usize,
    /// Memory all unfinished request bodies together may hold, in bytes.
    #[arg(long, env = "USERSYNC_MAX_BODY_MEMORY", default_value_t = 64 << 20)]
    max_body_memory: usize,
    /// Open connections per worker.
    #[arg(long, env = "USERSYNC_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Start even though the store fails its start-up check (it holds less than was acknowledged, or
    /// records fail their checksums), taking what it holds as the truth. Only after an explicit decision:
    /// what is missing stays lost.
    #[arg(long)]
    accept_data_loss: bool,
    /// Seconds before a failed webhook delivery is tried again; the wait doubles with each failure.
    #[arg(long, env = "USERSYNC_WEBHOOK_RETRY_MIN", default_value_t = 5)]
    webhook_retry_min: u64,
    /// Longest wait in seconds between two attempts of a webhook delivery.
    #[arg(long, env = "USERSYNC_WEBHOOK_RETRY_MAX", default_value_t = 3600)]
    webhook_retry_max: u64,
    /// Failed deliveries in a row after which a webhook pauses until resumed.
    #[arg(long, env = "USERSYNC_WEBHOOK_PAUSE_AFTER", default_value_t = 20)]
    webhook_pause_after: u32,
    /// The DNS server (ADDR:PORT) domain verification asks for `_usersync.<domain>` TXT records; the
    /// system's resolvers (/etc/resolv.conf) when absent.
    #[arg(long, env = "USERSYNC_DNS_RESOLVER")]
    dns_resolver: Option<std::net::SocketAddr>,
    /// Seconds a webhook receiver has to answer.
    #[arg(long, env = "USERSYNC_WEBHOOK_TIMEOUT", default_value_t = 15)]
    webhook_timeout: u64,
    /// A file holding the operator API's token (instead of USERSYNC_OPERATOR_TOKEN); without either, the
    /// operator API is not served.
    #[arg(long, env = "USERSYNC_OPERATOR_TOKEN_FILE")]
    operator_token_file: Option<PathBuf>,
}

/// Where the account and token commands act.
#[derive(Args)]
struct Remote {
    /// A running server (`http://host:port`) whose operator API to use, with the operator token from
    /// USERSYNC_OPERATOR_TOKEN; without it, the commands open the stopped server's data directory.
    #[arg(long, global = true)]
    url: Option<String>,
}

#[derive(Args)]
struct AccountArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account (through the operator API, also its first SCIM and admin tokens).
    Create { name: String },
    /// List accounts.
    List,
    /// Suspend an account: its tokens are refused with 403, its data kept.
    Suspend { name: String },
    /// Resume a suspended account.
    Resume { name: String },
    /// Delete an account and all its data, for good.
    Delete {
        name: String,
        /// The account's name again, to confirm.
        #[arg(long)]
        confirm: String,
    },
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Mark a domain verified for an account without a DNS check: from then on only that account can
    /// entitle logins in it (and its subdomains).
    Verify {
        #[arg(long, default_value = DEFAULT_ACCOUNT)]
        account: String,
        domain: String,
    },
    /// List the domains of every account (or of one) with their state.
    List {
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long, default_value = DEFAULT_ACCOUNT)]
        account: String,
        #[arg(long)]
        kind: TokenKind,
        #[arg(long)]
        name: String,
        /// When the token stops working (RFC 3339, e.g. 2027-01-01T00:00:00Z); never by default.
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Revoke a token by id.
    Revoke {
        #[arg(long, default_value = DEFAULT_ACCOUNT)]
        account: String,
        id: String,
    },
}

/// The server allocates and frees many small buffers per request (sled pages, JSON); mimalloc does that with
/// less contention and fewer instructions than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let logger = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    log::set_max_level(logger.filter());
    // Framing errors are logged at debug: without a token, anyone could otherwise fill the log.
    let _ = log::set_boxed_logger(Box::new(usersync::http::QuietFraming { inner: logger }));
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(&cli.data, cli.serve),
        Some(Command::Serve(args)) => serve(&cli.data, args),
        Some(Command::Account(args)) => account(&cli.data, args),
        Some(Command::Token(args)) => token(&cli.data, args),
        Some(Command::Domain(cmd)) => domain(&cli.data, cmd),
        Some(Command::Verify) => verify(&cli.data),
        Some(Command::Compact) => compact(&cli.data),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<StoreError>().is_some_and(|e| matches!(e, StoreError::Damaged(_))) => {
            eprintln!("usersync: {e}");
            ExitCode::from(DAMAGED)
        }
        Err(e) => {
            eprintln!("usersync: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code of a start refused because the store is damaged.
const DAMAGED: u8 = 3;

/// `verify` found problems (already printed).
#[derive(Debug, thiserror::Error)]
#[error("{0} problems found in the store")]
struct Problems(usize);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn serve(data: &std::path::Path, args: ServeArgs) -> Result<()> {
    let settings = Settings {
        listen: args.listen,
        data: data.to_path_buf(),
        durability: args.durability,
        http: HttpConfig {
            max_body: args.max_body,
            max_results: args.max_results.max(1),
            workers: args
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            trusted_proxies: args.trusted_proxies,
            max_operations: args.max_operations.max(1),
            max_values: args.max_values.max(1),
            body_timeout: std::time::Duration::from_secs(args.body_timeout.max(1)),
            min_body_rate: args.min_body_rate,
            max_body_memory: args.max_body_memory,
            max_connections: args.max_connections.max(1),
            ..HttpConfig::default()
        },
        scim_token: std::env::var("USERSYNC_SCIM_TOKEN").ok(),
        admin_token: std::env::var("USERSYNC_ADMIN_TOKEN").ok(),
        operator_token: operator_token(args.operator_token_file.as_deref())?,
        accept_data_loss: args.accept_data_loss,
        webhooks: usersync::delivery::webhooks::WebhookConfig {
            retry_min: std::time::Duration::from_secs(args.webhook_retry_min.max(1)),
            retry_max: std::time::Duration::from_secs(
                args.webhook_retry_max.max(args.webhook_retry_min).max(1),
            ),
            pause_after: args.webhook_pause_after.max(1),
            timeout: std::time::Duration::from_secs(args.webhook_timeout.max(1)),
        },
        dns_resolver: args.dns_resolver,
    };
    actix_web::rt::System::new().block_on(async move {
        let running = app::start(&settings)?;
        if !running.new_tokens.is_empty() {
            println!("Created account '{DEFAULT_ACCOUNT}'. These tokens are shown once; keep them now:");
            for t in &running.new_tokens {
                println!("  {} token: {}", t.kind.as_str(), t.secret);
            }
        }
        println!("usersync listening on http://{0} (SCIM base URL http://{0}/scim/v2)", running.addr);
        log::info!("data in {}, durability {:?}", settings.data.display(), settings.durability);
        running.server.await?;
        running.engine.stop();
        running.webhooks.stop();
        running.store.shutdown();
        log::info!("stopped; store flushed");
        Ok(())
    })
}

/// The operator token: from `--operator-token-file` (its first line) or `USERSYNC_OPERATOR_TOKEN`, not both.
fn operator_token(file: Option<&std::path::Path>) -> Result<Option<String>> {
    let env = std::env::var("USERSYNC_OPERATOR_TOKEN").ok().filter(|t| !t.is_empty());
    let Some(file) = file else { return Ok(env) };
    if env.is_some() {
        return Err(
            "give the operator token either in USERSYNC_OPERATOR_TOKEN or in --operator-token-file, not both"
                .into(),
        );
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("the operator token file {} cannot be read: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(format!("the operator token file {} is empty", file.display()).into());
    }
    Ok(Some(token))
}

fn open(data: &std::path::Path) -> Result<Store> {
    app::open_store(data, DurabilityMode::Sync, std::sync::Arc::new(SystemClock)).map_err(stopped_only)
}

fn stopped_only(e: StoreError) -> Box<dyn std::error::Error> {
    match e {
        StoreError::Locked(path) => format!(
            "the store in {path} is held by a running usersync server; stop it first, or act through its \
             operator API with --url (or use the admin API)"
        )
        .into(),
        other => other.into(),
    }
}

/// Opens the store as it is (writing nothing) and prints everything wrong with it.
fn verify(data: &std::path::Path) -> Result<()> {
    let holds_store = usersync::store::layout::active(data).map(|dir| dir.join("db").exists());
    if !holds_store.unwrap_or(true) {
        return Err(format!("there is no store in {}", data.display()).into());
    }
    let options = StoreOptions {
        path: data.to_path_buf(),
        durability: DurabilityMode::Relaxed,
        clock: std::sync::Arc::new(SystemClock),
    };
    let (store, mut problems) = Store::open_with(options, OnDamage::Inspect).map_err(stopped_only)?;
    match store.verify() {
        Ok(found) => problems.extend(found),
        Err(e) => problems.push(format!("the consistency check stopped: {e}")),
    }
    store.shutdown();
    if problems.is_empty() {
        println!("the store in {} is sound", data.display());
        return Ok(());
    }
    println!("the store in {} has {} problems:", data.display(), problems.len());
    for p in &problems {
        println!("  - {p}");
    }
    Err(Problems(problems.len()).into())
}

fn compact(data: &std::path::Path) -> Result<()> {
    let done = usersync::store::compact::compact(data).map_err(stopped_only)?;
    println!(
        "compacted the store in {}: {} records, {} bytes on disk before, {} after",
        data.display(),
        done.records,
        done.before,
        done.after
    );
    Ok(())
}

fn target(data: &std::path::Path, remote: Remote) -> Result<cli::Target> {
    match remote.url {
        Some(url) => Ok(cli::Target::Remote(cli::Remote::new(&url)?)),
        None => Ok(cli::Target::Local(open(data)?)),
    }
}

fn account(data: &std::path::Path, args: AccountArgs) -> Result<()> {
    let target = target(data, args.remote)?;
    match args.command {
        AccountCommand::Create { name } => {
            let (account, lines) = target.create_account(&name)?;
            println!("created account '{}' (id {})", account.name, account.id);
            for line in lines {
                println!("{line}");
            }
        }
        AccountCommand::List => {
            for a in target.accounts()? {
                println!("{}\t{}\t{}\t{}", a.id, a.name, a.created, a.status);
            }
        }
        AccountCommand::Suspend { name } => {
            target.change_account(&name, "suspend")?;
            println!("suspended account '{name}'");
        }
        AccountCommand::Resume { name } => {
            target.change_account(&name, "resume")?;
            println!("resumed account '{name}'");
        }
        AccountCommand::Delete { name, confirm } => {
            if confirm != name {
                return Err(format!("to delete account '{name}', repeat its name: --confirm {name}").into());
            }
            target.change_account(&name, "delete")?;
            println!("deleted account '{name}' and all its data");
        }
    }
    target.finish();
    Ok(())
}

fn token(data: &std::path::Path, args: TokenArgs) -> Result<()> {
    let target = target(data, args.remote)?;
    match args.command {
        TokenCommand::Create { account, kind, name, expires_at } => {
            let (info, secret) = target.create_token(&account, kind, &name, expires_at)?;
            println!("created {} token '{}' (id {}) for account '{account}':", info.kind, info.name, info.id);
            println!("{secret}");
        }
        TokenCommand::List { account } => {
            for t in target.tokens(account.as_deref())? {
                let expires = t.expires_at.as_deref().unwrap_or("-");
                println!("{}\t{}\t{}\t{}\t{}\t{expires}", t.id, t.account, t.kind, t.name, t.created);
            }
        }
        TokenCommand::Revoke { account, id } => {
            let info = target.revoke_token(&account, &id)?;
            println!("revoked {} token '{}' ({})", info.kind, info.name, info.id);
        }
    }
    target.finish();
    Ok(())
}

fn domain(data: &std::path::Path, cmd: DomainCommand) -> Result<()> {
    use usersync::rules::domains::{domains_of, mark_domain_verified};
    use usersync::store::domains::Verification;
    let store = open(data)?;
    let account_id = |name: &str| -> Result<usersync::store::AccountId> {
        Ok(store.account(name)?.ok_or_else(|| format!("no account named '{name}'"))?.id)
    };
    match cmd {
        DomainCommand::Verify { account, domain } => {
            let actor = usersync::store::Actor("cli".into());
            let claim =
                mark_domain_verified(&store, account_id(&account)?, &domain, Verification::Cli, &actor)?;
            println!("domain '{}' is verified for account '{account}'", claim.domain);
        }
        DomainCommand::List { account } => {
            let accounts = match account {
                Some(name) => vec![(account_id(&name)?, name)],
                None => store.accounts()?.into_iter().map(|a| (a.id, a.name)).collect(),
            };
            for (id, name) in accounts {
                for claim in domains_of(&store, id)? {
                    let when = claim.verified_at.as_deref().unwrap_or("-");
                    println!("{name}\t{}\t{}\t{when}", claim.domain, claim.state());
                }
            }
        }
    }
    store.durable_blocking()?;
    store.shutdown();
    Ok(())
}
