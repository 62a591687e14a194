//! The `usersync` command: `serve` (the default), the account, token and domain subcommands, `verify` and
//! `compact` for a stopped store, and `backup` and `restore`.

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
    /// How log lines are written: `text` (for people) or `json` (one object per line, for collectors).
    #[arg(long, env = "USERSYNC_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(Box<ServeArgs>),
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
    /// Write a consistent snapshot of the store to a file: from the running server through its socket in
    /// the data directory (writes go on meanwhile), or from the stopped store directly.
    Backup {
        /// The backup file to write.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup file into the data directory given with --data, which must be empty or absent
    /// (no server may run on it). The file is checked through before anything is written.
    Restore {
        /// The backup file to read.
        #[arg(long)]
        from: PathBuf,
    },
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
    /// Certificate chain (PEM) to serve HTTPS with; needs --tls-key. SIGHUP reloads it.
    #[arg(long, env = "USERSYNC_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "USERSYNC_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A second address serving /metrics without a token (for a network only the operator reaches).
    #[arg(long, env = "USERSYNC_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// A file holding the token that /metrics on --listen asks for (instead of USERSYNC_METRICS_TOKEN).
    #[arg(long, env = "USERSYNC_METRICS_TOKEN_FILE")]
    metrics_token_file: Option<PathBuf>,
    /// Seconds the server goes on serving after SIGTERM, /readyz answering 503, so that a load balancer
    /// takes it out before it stops accepting.
    #[arg(long, env = "USERSYNC_DRAIN_SECONDS", default_value_t = 0)]
    drain_seconds: u64,
    /// Requests per second an account may make, sustained (0: no limit). An account's own limit, set by
    /// the operator, takes precedence.
    #[arg(long, env = "USERSYNC_RATE_LIMIT", default_value_t = usersync::store::RateLimit::DEFAULT.per_second)]
    rate_limit: u32,
    /// Requests an account may make at once above its sustained rate.
    #[arg(long, env = "USERSYNC_RATE_BURST", default_value_t = usersync::store::RateLimit::DEFAULT.burst)]
    rate_burst: u32,
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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    let cli = Cli::parse();
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if cli.log_format == LogFormat::Json {
        builder.format(write_json);
    }
    let logger = builder.build();
    log::set_max_level(logger.filter());
    // Framing errors are logged at debug: without a token, anyone could otherwise fill the log.
    let _ = log::set_boxed_logger(Box::new(usersync::http::QuietFraming { inner: logger }));
    let result = match cli.command {
        None => serve(&cli.data, cli.serve),
        Some(Command::Serve(args)) => serve(&cli.data, *args),
        Some(Command::Account(args)) => account(&cli.data, args),
        Some(Command::Token(args)) => token(&cli.data, args),
        Some(Command::Domain(cmd)) => domain(&cli.data, cmd),
        Some(Command::Verify) => verify(&cli.data),
        Some(Command::Compact) => compact(&cli.data),
        Some(Command::Backup { to }) => backup(&cli.data, &to),
        Some(Command::Restore { from }) => restore(&from, &cli.data),
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

/// One JSON object per line: `time`, `level`, `target`, `message`, and the record's fields (a request's
/// `request_id`, `account`, `token`, `method`, `route`, `path`, `status`, `latency_ms`).
fn write_json(buf: &mut env_logger::fmt::Formatter, record: &log::Record<'_>) -> std::io::Result<()> {
    use std::io::Write;
    struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);
    impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'kvs>,
            value: log::kv::Value<'kvs>,
        ) -> std::result::Result<(), log::kv::Error> {
            let value = match (value.to_u64(), value.to_f64(), value.to_bool()) {
                (Some(n), _, _) => n.into(),
                (None, Some(f), _) => f.into(),
                (None, None, Some(b)) => b.into(),
                _ => value.to_string().into(),
            };
            self.0.insert(key.as_str().to_string(), value);
            Ok(())
        }
    }
    let mut line = serde_json::Map::new();
    line.insert(
        "time".into(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into(),
    );
    line.insert("level".into(), record.level().as_str().into());
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), record.args().to_string().into());
    let _ = log::kv::Source::visit(record.key_values(), &mut Fields(&mut line));
    writeln!(buf, "{}", serde_json::Value::Object(line))
}

/// The exit code of a start refused because the store is damaged.
const DAMAGED: u8 = 3;

/// `verify` found problems (already printed).
#[derive(Debug, thiserror::Error)]
#[error("{0} problems found in the store")]
struct Problems(usize);

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The metrics token: `USERSYNC_METRICS_TOKEN`, or the first line of `--metrics-token-file`.
fn metrics_access(file: Option<&std::path::Path>) -> Result<usersync::http::observe::MetricsAccess> {
    let token = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--metrics-token-file {}: {e}", path.display()))?;
            Some(text.lines().next().unwrap_or_default().trim().to_string())
        }
        None => std::env::var("USERSYNC_METRICS_TOKEN").ok(),
    };
    match token.filter(|t| !t.is_empty()) {
        None => Ok(Default::default()),
        Some(t) if t.chars().count() < app::MIN_ENV_TOKEN_LEN => Err(format!(
            "the metrics token is {} characters long; it needs at least {}",
            t.chars().count(),
            app::MIN_ENV_TOKEN_LEN
        )
        .into()),
        Some(t) => Ok(usersync::http::observe::MetricsAccess::with_token(&t)),
    }
}

fn serve(data: &std::path::Path, args: ServeArgs) -> Result<()> {
    let rate_limit = (args.rate_limit > 0)
        .then(|| usersync::store::RateLimit { per_second: args.rate_limit, burst: args.rate_burst.max(1) });
    let metrics = metrics_access(args.metrics_token_file.as_deref())?;
    let mail = mail_config(&args)?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(usersync::http::tls::TlsFiles { cert, key }),
        _ => None,
    };
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
            rate_limit,
            metrics,
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
        tls,
        metrics_listen: args.metrics_listen,
        drain: std::time::Duration::from_secs(args.drain_seconds),
        prune_every: std::time::Duration::from_secs(60),
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
        let scheme = running.scheme();
        println!("usersync listening on {scheme}://{0} (SCIM base URL {scheme}://{0}/scim/v2)", running.addr);
        log::info!("data in {}, durability {:?}", settings.data.display(), settings.durability);
        running.watch_signals(settings.drain)?;
        if let Some((metrics, addr)) = running.metrics {
            println!("usersync metrics on http://{addr}/metrics");
            actix_web::rt::spawn(metrics);
        }
        running.server.await?;
        running.engine.stop();
        running.webhooks.stop();
        if let Some(socket) = running.socket {
            socket.stop();
        }
        running.mail.stop();
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

/// `backup --to FILE`: through the running server's socket, else from the stopped store; the file is
/// written beside its name first and renamed into place once checked.
fn backup(data: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let taken = (|| -> Result<(usersync::store::backup::BackupHeader, &str)> {
        if let Some(header) = usersync::socket::fetch_backup(data, &partial)? {
            return Ok((header, "from the running server"));
        }
        let holds_store = usersync::store::layout::active(data).map(|dir| dir.join("db").exists());
        if !holds_store.unwrap_or(true) {
            return Err(format!("there is no store in {}", data.display()).into());
        }
        let store = open(data).map_err(|e| {
            format!(
                "{e} (a server holds the store, but its socket {} did not answer)",
                data.join(usersync::socket::SOCKET_FILE).display()
            )
        })?;
        let written = store.backup(std::fs::File::create(&partial)?);
        store.shutdown();
        written?;
        Ok((usersync::store::backup::check(&partial)?, "from the stopped store"))
    })();
    let (header, how) = match taken {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, to)?;
    println!("backed up commit {} ({} records) {how} to {}", header.commit, header.records, to.display());
    Ok(())
}

/// `restore --from FILE` into the (empty) data directory.
fn restore(from: &std::path::Path, data: &std::path::Path) -> Result<()> {
    let header = usersync::store::backup::restore(from, data)?;
    println!(
        "restored commit {} ({} records, backed up {}) into {}; check it with `usersync --data {} verify`",
        header.commit,
        header.records,
        header.created,
        data.display(),
        data.display()
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
