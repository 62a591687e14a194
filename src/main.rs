//! The `usersync` command: `serve` (the default), the account and token subcommands, and `verify` and
//! `compact` for a stopped store.

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
    Serve(Box<ServeArgs>),
    /// Manage accounts (on a stopped server's data directory).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Manage bearer tokens (on a stopped server's data directory).
    #[command(subcommand)]
    Token(TokenCommand),
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
    /// Seconds a webhook receiver has to answer.
    #[arg(long, env = "USERSYNC_WEBHOOK_TIMEOUT", default_value_t = 15)]
    webhook_timeout: u64,
    /// The mail server welcome emails are sent to: `smtp://user:pass@host:587` (STARTTLS required) or
    /// `smtps://user:pass@host:465` (TLS). Without it messages stay in the outbox.
    #[arg(long, env = "USERSYNC_SMTP_URL")]
    smtp_url: Option<String>,
    /// A file whose first line is the SMTP password (instead of one in the URL).
    #[arg(long, env = "USERSYNC_SMTP_PASSWORD_FILE")]
    smtp_password_file: Option<PathBuf>,
    /// The address welcome emails come from (required with --smtp-url).
    #[arg(long, env = "USERSYNC_SMTP_FROM")]
    smtp_from: Option<String>,
    /// A CA certificate (PEM) to trust for the mail server besides the system's, for a private relay.
    #[arg(long, env = "USERSYNC_SMTP_CA_FILE")]
    smtp_ca_file: Option<PathBuf>,
    /// The wait after a first temporary SMTP failure (`90`, `90s`, `5m`, `2h`); it doubles with each.
    #[arg(long, env = "USERSYNC_SMTP_RETRY_MIN", default_value = "60s", value_parser = duration)]
    smtp_retry_min: std::time::Duration,
    /// The longest wait between two attempts of a welcome email.
    #[arg(long, env = "USERSYNC_SMTP_RETRY_MAX", default_value = "24h", value_parser = duration)]
    smtp_retry_max: std::time::Duration,
    /// Welcome emails sent per second per account, at most.
    #[arg(long, env = "USERSYNC_SMTP_RATE", default_value_t = 5)]
    smtp_rate: u32,
    /// How long the mail server has to answer each command (`30s`).
    #[arg(long, env = "USERSYNC_SMTP_TIMEOUT", default_value = "30s", value_parser = duration)]
    smtp_timeout: std::time::Duration,
}

/// A duration on the command line: a number of seconds, or a number with `ms`, `s`, `m`, `h` or `d`.
fn duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("'{text}' is not a duration such as 90s, 5m or 24h"))?;
    let ms = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("'{other}' is not a unit of time (ms, s, m, h, d)")),
    };
    let d = std::time::Duration::from_millis(n.saturating_mul(ms));
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

/// The mail server from the command line, if one is given.
fn mail_config(args: &ServeArgs) -> Result<Option<usersync::delivery::mail::MailConfig>> {
    let Some(url) = args.smtp_url.as_deref().filter(|u| !u.is_empty()) else {
        if args.smtp_from.is_some() || args.smtp_password_file.is_some() || args.smtp_ca_file.is_some() {
            log::warn!("--smtp-from, --smtp-password-file and --smtp-ca-file do nothing without --smtp-url");
        }
        return Ok(None);
    };
    let mut config = usersync::delivery::mail::MailConfig::new(
        url,
        args.smtp_password_file.as_deref(),
        args.smtp_from.as_deref(),
        args.smtp_ca_file.as_deref(),
    )?;
    config.retry_min = args.smtp_retry_min;
    config.retry_max = args.smtp_retry_max.max(args.smtp_retry_min);
    config.rate = args.smtp_rate.max(1);
    config.timeout = args.smtp_timeout;
    Ok(Some(config))
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account.
    Create { name: String },
    /// List accounts.
    List,
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
        Some(Command::Serve(args)) => serve(&cli.data, *args),
        Some(Command::Account(cmd)) => account(&cli.data, cmd),
        Some(Command::Token(cmd)) => token(&cli.data, cmd),
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
    let mail = mail_config(&args)?;
    let settings = Settings {
        mail,
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
        accept_data_loss: args.accept_data_loss,
        webhooks: usersync::delivery::webhooks::WebhookConfig {
            retry_min: std::time::Duration::from_secs(args.webhook_retry_min.max(1)),
            retry_max: std::time::Duration::from_secs(
                args.webhook_retry_max.max(args.webhook_retry_min).max(1),
            ),
            pause_after: args.webhook_pause_after.max(1),
            timeout: std::time::Duration::from_secs(args.webhook_timeout.max(1)),
        },
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
        running.mail.stop();
        running.store.shutdown();
        log::info!("stopped; store flushed");
        Ok(())
    })
}

fn open(data: &std::path::Path) -> Result<Store> {
    app::open_store(data, DurabilityMode::Sync, std::sync::Arc::new(SystemClock)).map_err(stopped_only)
}

fn stopped_only(e: StoreError) -> Box<dyn std::error::Error> {
    match e {
        StoreError::Locked(path) => format!(
            "the store in {path} is held by a running usersync server; stop it first, or use the admin API"
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

fn account(data: &std::path::Path, cmd: AccountCommand) -> Result<()> {
    let store = open(data)?;
    match cmd {
        AccountCommand::Create { name } => {
            let account = store.create_account(&name)?;
            println!("created account '{}' (id {})", account.name, account.id.0);
        }
        AccountCommand::List => {
            for a in store.accounts()? {
                println!("{}\t{}\t{}", a.id.0, a.name, a.created);
            }
        }
    }
    store.shutdown();
    Ok(())
}

fn token(data: &std::path::Path, cmd: TokenCommand) -> Result<()> {
    let store = open(data)?;
    let account_id = |name: &str| -> Result<usersync::store::AccountId> {
        Ok(store.account(name)?.ok_or_else(|| format!("no account named '{name}'"))?.id)
    };
    match cmd {
        TokenCommand::Create { account, kind, name } => {
            let (info, secret) = store.create_token(
                account_id(&account)?,
                kind,
                &name,
                &usersync::store::Actor("cli".into()),
            )?;
            println!(
                "created {} token '{}' (id {}) for account '{account}':",
                info.kind.as_str(),
                info.name,
                info.id
            );
            println!("{secret}");
        }
        TokenCommand::List { account } => {
            let filter = account.as_deref().map(account_id).transpose()?;
            let names: std::collections::HashMap<_, _> =
                store.accounts()?.into_iter().map(|a| (a.id, a.name)).collect();
            for t in store.tokens(filter)? {
                let acct = names.get(&t.account).map_or("?", String::as_str);
                println!("{}\t{}\t{}\t{}\t{}", t.id, acct, t.kind.as_str(), t.name, t.created);
            }
        }
        TokenCommand::Revoke { account, id } => {
            let info =
                store.revoke_token(account_id(&account)?, &id, &usersync::store::Actor("cli".into()))?;
            println!("revoked {} token '{}' ({})", info.kind.as_str(), info.name, info.id);
        }
    }
    store.shutdown();
    Ok(())
}
