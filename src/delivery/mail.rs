//! Welcome emails over SMTP: the sender that hands the outbox's messages to the configured mail server,
//! and that server's configuration. `smtp://` always requires STARTTLS, `smtps://` is TLS from the first
//! byte; the server's certificate is checked against the system's roots and an optional private CA. The
//! sender runs on a thread and runtime of its own with a pool of connections, one task per account
//! sending its messages oldest first at most at the account's rate. A temporary failure (4xx, no
//! connection, a timeout) defers the message with exponential backoff and jitter; a permanent one (5xx)
//! fails it at once. A message the server accepted is recorded as sent and never sent again; a crash
//! between the server's acceptance and that record can send it once more (the Message-ID stays the same).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::worker::{Shared, Worker};
use crate::store::outbox::{MailOutcome, MailSettings};
use crate::store::sync::{MailStatus, OutboxMessage};
use crate::store::{AccountId, Store, StoreResult};

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// The mail server and how the sender uses it.
#[derive(Clone)]
pub struct MailConfig {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    password: Option<String>,
    /// The address every welcome email comes from (`--smtp-from`).
    pub from: Address,
    /// A CA to trust besides the system's (PEM), for a private relay.
    ca: Option<Vec<u8>>,
    /// The wait after a first temporary failure; it doubles with each failure in a row.
    pub retry_min: Duration,
    /// The longest wait between attempts.
    pub retry_max: Duration,
    /// Messages per second per account.
    pub rate: u32,
    /// How long the server has to answer each command.
    pub timeout: Duration,
    /// Open connections kept to the server.
    pub pool_size: u32,
}

/// The password never appears in logs or answers.
impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailConfig")
            .field("server", &self.server())
            .field("user", &self.user)
            .field("from", &self.from.to_string())
            .field("private_ca", &self.ca.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the SMTP settings are refused at start.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("--smtp-url: {0}")]
    Url(String),
    #[error("--smtp-from: '{0}' is not an email address")]
    From(String),
    #[error("--smtp-from is required with --smtp-url (the address welcome emails come from)")]
    NoFrom,
    #[error("--smtp-password-file: {0}")]
    PasswordFile(String),
    #[error("--smtp-ca-file: {0}")]
    CaFile(String),
}

/// Percent-decodes a URL's user or password.
fn decoded(text: &str) -> Result<String, MailConfigError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = byte else {
                return Err(MailConfigError::Url(
                    "a '%' in the credentials is not followed by two hex digits".into(),
                ));
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MailConfigError::Url("the credentials are not UTF-8".into()))
}

impl MailConfig {
    /// The configuration from the command line: `url` is `smtp://[user[:password]@]host[:port]` (port
    /// 587) or `smtps://...` (port 465); a password file replaces the URL's password (its first line).
    pub fn new(
        url: &str,
        password_file: Option<&Path>,
        from: Option<&str>,
        ca_file: Option<&Path>,
    ) -> Result<MailConfig, MailConfigError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| MailConfigError::Url(format!("'{url}' is not a URL ({e})")))?;
        let security = match parsed.scheme() {
            "smtp" => Security::StartTls,
            "smtps" => Security::Implicit,
            other => {
                return Err(MailConfigError::Url(format!("the scheme must be smtp or smtps, not '{other}'")));
            }
        };
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            _ => return Err(MailConfigError::Url("must name a host".into())),
        };
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(MailConfigError::Url("must have no path, query or fragment".into()));
        }
        let port = parsed.port().unwrap_or(match security {
            Security::StartTls => 587,
            Security::Implicit => 465,
        });
        let user = Some(decoded(parsed.username())?).filter(|u| !u.is_empty());
        let mut password = parsed.password().map(decoded).transpose()?;
        if let Some(file) = password_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| MailConfigError::PasswordFile(format!("{}: {e}", file.display())))?;
            let first = text.lines().next().unwrap_or_default().to_string();
            if first.is_empty() {
                return Err(MailConfigError::PasswordFile(format!("{} is empty", file.display())));
            }
            password = Some(first);
        }
        if password.is_some() && user.is_none() {
            return Err(MailConfigError::Url("a password needs a user name (smtp://user@host)".into()));
        }
        let from = from.ok_or(MailConfigError::NoFrom)?;
        let from: Address = from.trim().parse().map_err(|_| MailConfigError::From(from.to_string()))?;
        let ca = match ca_file {
            None => None,
            Some(file) => {
                let pem = std::fs::read(file)
                    .map_err(|e| MailConfigError::CaFile(format!("{}: {e}", file.display())))?;
                Certificate::from_pem(&pem).map_err(|e| {
                    MailConfigError::CaFile(format!("{}: not a PEM certificate ({e})", file.display()))
                })?;
                Some(pem)
            }
        };
        Ok(MailConfig {
            security,
            host,
            port,
            user,
            password,
            from,
            ca,
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(24 * 3600),
            rate: 5,
            timeout: Duration::from_secs(30),
            pool_size: 4,
        })
    }

    /// The server as the admin API shows it, without credentials: `smtp://host:587 (STARTTLS)`.
    pub fn server(&self) -> String {
        match self.security {
            Security::StartTls => format!("smtp://{}:{} (STARTTLS)", self.host, self.port),
            Security::Implicit => format!("smtps://{}:{} (TLS)", self.host, self.port),
        }
    }

    /// The pooled transport (built inside the sender's runtime, which its pool runs on).
    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let mut tls = TlsParameters::builder(self.host.clone());
        if let Some(pem) = &self.ca {
            tls = tls.add_root_certificate(Certificate::from_pem(pem)?);
        }
        let tls = tls.build_rustls()?;
        let tls = match self.security {
            Security::StartTls => Tls::Required(tls),
            Security::Implicit => Tls::Wrapper(tls),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(self.pool_size.max(1)));
        if let Some(user) = &self.user {
            builder = builder
                .credentials(Credentials::new(user.clone(), self.password.clone().unwrap_or_default()));
        }
        Ok(builder.build())
    }
}

/// Is `text` an email address a welcome email can come from or be answered to?
pub fn is_address(text: &str) -> bool {
    text.parse::<Address>().is_ok()
}

/// The `Content-Language` header (RFC 3282): the language the message is written in.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// A language as a BCP 47 tag: `fr_FR` → `fr-FR`.
fn language_tag(language: &str) -> String {
    language.replace('_', "-")
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML part of a message: its text, escaped, a paragraph per blank-line-separated block.
pub fn html_body(message: &OutboxMessage) -> String {
    let paragraphs: String = message
        .body
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>\n", escape_html(p.trim()).replace('\n', "<br>\n")))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n{paragraphs}</body>\n</html>\n",
        escape_html(&language_tag(&message.language)),
        escape_html(&message.subject)
    )
}

/// The email of a welcome message: from the server's address under the account's sender name, with its
/// reply-to, multipart text and HTML in the message's language. The Message-ID derives from the
/// message's id, so a duplicate after a crash is recognisable as one.
pub fn email(
    config: &MailConfig,
    settings: &MailSettings,
    message: &OutboxMessage,
) -> Result<Message, String> {
    let to: Address =
        message.to.parse().map_err(|_| format!("the recipient '{}' is not an email address", message.to))?;
    let from = Mailbox::new(settings.sender_name.clone(), config.from.clone());
    let mut builder = Message::builder()
        .from(from)
        .to(Mailbox::new(None, to))
        .subject(message.subject.clone())
        .message_id(Some(format!("<{}@{}>", message.id, config.from.domain())))
        .header(ContentLanguage(language_tag(&message.language)));
    if let Some(reply_to) = &settings.reply_to {
        let reply_to: Address =
            reply_to.parse().map_err(|_| format!("the reply-to '{reply_to}' is not an email address"))?;
        builder = builder.reply_to(Mailbox::new(None, reply_to));
    }
    let text = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(message.body.clone());
    let html = SinglePart::builder().header(ContentType::TEXT_HTML).body(html_body(message));
    builder
        .multipart(MultiPart::alternative().singlepart(text).singlepart(html))
        .map_err(|e| format!("the message could not be built: {e}"))
}

/// The queue id a server's acceptance names (`250 2.0.0 Ok: queued as 4F3A2`).
pub fn queue_id(reply: &str) -> Option<String> {
    let lower = reply.to_ascii_lowercase();
    let at = lower.find("queued as ")? + "queued as ".len();
    let id: String = reply[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_matches(['<', '>', '.'])
        .to_string();
    (!id.is_empty()).then_some(id)
}

/// What an error of the transport means for the message: a permanent failure only when the server
/// answered 5xx; everything else (4xx, no connection, TLS, a timeout) is tried again.
fn outcome_of_error(
    e: &lettre::transport::smtp::Error,
    config: &MailConfig,
    attempts: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> MailOutcome {
    let reply = match (e.status(), std::error::Error::source(e)) {
        // The server's reply as it gave it: `550 5.1.1 No such user`.
        (Some(code), Some(text)) => format!("{code} {}", text.to_string().replace('\n', " ")),
        _ => {
            let mut reply = if e.is_timeout() { format!("timed out: {e}") } else { e.to_string() };
            let mut source = std::error::Error::source(e).and_then(|s| s.source());
            while let Some(cause) = source {
                let text = cause.to_string();
                if !reply.contains(&text) {
                    reply.push_str(": ");
                    reply.push_str(&text);
                }
                source = cause.source();
            }
            reply
        }
    };
    if e.is_permanent() {
        return MailOutcome::Failed { reply };
    }
    let wait = super::backoff(config.retry_min, config.retry_max, attempts);
    MailOutcome::Deferred { reply, next_attempt: now + chrono::Duration::from_std(wait).unwrap_or_default() }
}

/// The running sender; [`Mail::stop`] ends it. Without a mail server configured it is idle, and the
/// messages stay queued (`notConfigured` in the outbox).
#[derive(Clone, Default)]
pub struct Mail {
    worker: Option<Worker>,
}

impl Mail {
    /// Starts the sender on a thread of its own (`None`: no mail server, nothing is sent).
    pub fn start(store: Store, config: Option<MailConfig>) -> std::io::Result<Mail> {
        let Some(config) = config else { return Ok(Mail::default()) };
        let worker = Worker::spawn("usersync-mail", move |shared| async move {
            match config.transport() {
                Ok(transport) => supervise(store, transport, Arc::new(config), shared).await,
                Err(e) => {
                    log::error!("mail: the SMTP transport cannot be set up ({e}); nothing will be sent")
                }
            }
        })?;
        Ok(Mail { worker: Some(worker) })
    }

    /// Stops sending (an attempt under way is dropped and made again after a restart) and waits for the
    /// thread to end.
    pub fn stop(&self) {
        if let Some(worker) = &self.worker {
            worker.stop();
        }
    }

    /// Looks at the outbox again now (messages were queued again).
    pub fn wake(&self) {
        if let Some(worker) = &self.worker {
            worker.wake();
        }
    }
}

/// How often the outbox is looked at for new and due messages.
const POLL: Duration = Duration::from_millis(250);

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Keeps one sending task per account that has messages owed.
async fn supervise(store: Store, transport: Transport, config: Arc<MailConfig>, shared: Arc<Shared>) {
    let mut running: HashMap<AccountId, tokio::task::JoinHandle<()>> = HashMap::new();
    while !shared.stopping() {
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        running.retain(|_, task| !task.is_finished());
        match store.accounts_owed_mail() {
            Ok(accounts) => {
                for acct in accounts {
                    if running.contains_key(&acct) {
                        continue;
                    }
                    let task =
                        deliver(store.clone(), transport.clone(), config.clone(), shared.clone(), acct);
                    running.insert(acct, tokio::spawn(task));
                }
            }
            Err(e) => log::error!("mail: reading the outbox failed: {e}"),
        }
        let _ = tokio::time::timeout(POLL, woken).await;
    }
    for task in running.into_values() {
        task.abort();
    }
    transport.shutdown().await;
}

/// Sends the account's due messages, oldest first, at most `config.rate` a second; ends when none is
/// due (the supervisor starts it again).
async fn deliver(
    store: Store,
    transport: Transport,
    config: Arc<MailConfig>,
    shared: Arc<Shared>,
    acct: AccountId,
) {
    let interval = Duration::from_secs(1) / config.rate.max(1);
    let mut last: Option<Instant> = None;
    loop {
        let due = match due_messages(&store, acct) {
            Ok(due) => due,
            Err(e) => {
                log::error!("mail: reading the outbox failed: {e}");
                return;
            }
        };
        if due.is_empty() {
            return;
        }
        for (seq, message) in due {
            if shared.stopping() {
                return;
            }
            if let Some(at) = last {
                tokio::time::sleep_until((at + interval).into()).await;
            }
            last = Some(Instant::now());
            if let Err(e) = send_one(&store, &transport, &config, &shared, acct, seq, &message).await {
                log::error!("mail: message {}: {e}", message.id);
                return;
            }
        }
    }
}

/// The account's messages due now: queued, or deferred with their next attempt reached.
fn due_messages(store: &Store, acct: AccountId) -> StoreResult<Vec<(u64, OutboxMessage)>> {
    let now = crate::clock::timestamp(store.now());
    Ok(store
        .mail_owed(acct)?
        .into_iter()
        .filter(|(_, m)| match m.status {
            MailStatus::Queued => true,
            MailStatus::Deferred => m.next_attempt.as_ref().is_none_or(|t| *t <= now),
            _ => false,
        })
        .collect())
}

/// One attempt at one message, recorded. A message whose user is gone is cancelled instead; an
/// acceptance is recorded even if the store fails for a while, so it is never sent twice by this process.
async fn send_one(
    store: &Store,
    transport: &Transport,
    config: &MailConfig,
    shared: &Shared,
    acct: AccountId,
    seq: u64,
    message: &OutboxMessage,
) -> StoreResult<()> {
    // Read again: the message may have been cancelled or sent since the list was read.
    let Some(current) = store.mail_message(acct, seq)? else { return Ok(()) };
    if !matches!(current.status, MailStatus::Queued | MailStatus::Deferred) {
        return Ok(());
    }
    if store.user(acct, &message.user)?.is_none() {
        store.cancel_mail(acct, seq, "the user was deleted")?;
        return Ok(());
    }
    let (settings, _) = store.mail_settings(acct)?;
    let outcome = match email(config, &settings, &current) {
        Err(reason) => MailOutcome::Failed { reply: reason },
        Ok(email) => match transport.send(email).await {
            Ok(response) => {
                let lines: Vec<&str> = response.message().collect();
                let reply = format!("{} {}", response.code(), lines.join(" "));
                MailOutcome::Sent { queue_id: queue_id(&reply), reply }
            }
            Err(e) => outcome_of_error(&e, config, current.attempts, store.now()),
        },
    };
    match &outcome {
        MailOutcome::Sent { reply, .. } => {
            log::info!("mail: message {} to {} accepted: {reply}", current.id, current.to)
        }
        MailOutcome::Deferred { reply, .. } => {
            log::warn!("mail: message {} to {} deferred: {reply}", current.id, current.to)
        }
        MailOutcome::Failed { reply } => {
            log::warn!("mail: message {} to {} failed: {reply}", current.id, current.to)
        }
    }
    loop {
        match store.mail_attempted(acct, seq, &outcome) {
            // Durable at once: until it is, a crash would send the message again.
            Ok(_) => return store.durable().await,
            Err(e) if matches!(outcome, MailOutcome::Sent { .. }) && !shared.stopping() => {
                log::error!("mail: recording that message {} was sent failed, trying again: {e}", current.id);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> OutboxMessage {
        OutboxMessage {
            id: "m1".into(),
            user: "u1".into(),
            to: "jane@example.com".into(),
            template: "default".into(),
            language: "fr_FR".into(),
            subject: "Bienvenue, <Jane>".into(),
            body: body.into(),
            created: "2026-01-01T00:00:00.000Z".into(),
            rule: None,
            user_name: None,
            status: MailStatus::Queued,
            attempts: 0,
            last_attempt: None,
            next_attempt: None,
            queue_id: None,
            reply: None,
        }
    }

    #[test]
    fn urls_name_the_security_port_and_credentials() {
        let c = MailConfig::new(
            "smtp://mailer:p%40ss@relay.example.com",
            None,
            Some("noreply@example.com"),
            None,
        )
        .unwrap();
        assert_eq!((c.security, c.port, c.user.as_deref()), (Security::StartTls, 587, Some("mailer")));
        assert_eq!(c.password.as_deref(), Some("p@ss"));
        assert!(!format!("{c:?}").contains("p@ss"), "the password is never shown");
        let c = MailConfig::new("smtps://relay.example.com:2465", None, Some("a@b.c"), None).unwrap();
        assert_eq!((c.security, c.port, c.user.as_deref()), (Security::Implicit, 2465, None));
        assert_eq!(c.server(), "smtps://relay.example.com:2465 (TLS)");
        for bad in ["http://relay", "smtp://", "smtp://relay/path", "smtp://:pw@relay"] {
            assert!(MailConfig::new(bad, None, Some("a@b.c"), None).is_err(), "{bad}");
        }
        assert!(matches!(MailConfig::new("smtp://relay", None, None, None), Err(MailConfigError::NoFrom)));
        assert!(MailConfig::new("smtp://relay", None, Some("not an address"), None).is_err());
    }

    #[test]
    fn the_password_file_replaces_the_urls_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = MailConfig::new("smtp://mailer:inline@relay", Some(&file), Some("a@b.c"), None).unwrap();
        assert_eq!(c.password.as_deref(), Some("from-file"));
        assert!(MailConfig::new("smtp://relay", Some(&file), Some("a@b.c"), None).is_err(), "no user");
    }

    #[test]
    fn html_is_escaped_paragraphs_in_the_messages_language() {
        let html = html_body(&message("Bonjour <Jane> & co,\n\nVotre compte\nest prêt."));
        assert!(html.contains("<html lang=\"fr-FR\">"), "{html}");
        assert!(html.contains("<p>Bonjour &lt;Jane&gt; &amp; co,</p>"), "{html}");
        assert!(html.contains("<p>Votre compte<br>\nest prêt.</p>"), "{html}");
        assert!(html.contains("<title>Bienvenue, &lt;Jane&gt;</title>"), "{html}");
    }

    #[test]
    fn queue_ids_come_from_the_acceptance() {
        assert_eq!(queue_id("250 2.0.0 Ok: queued as 4F3A2B").as_deref(), Some("4F3A2B"));
        assert_eq!(queue_id("250 2.0.0 OK <abc@x> Queued as <ID7>.").as_deref(), Some("ID7"));
        assert_eq!(queue_id("250 OK"), None);
    }

    #[test]
    fn a_recipient_that_is_no_address_cannot_be_sent_to() {
        let config = MailConfig::new("smtp://relay", None, Some("noreply@example.com"), None).unwrap();
        let settings =
            MailSettings { sender_name: Some("Acme IT".into()), reply_to: Some("it@example.com".into()) };
        let email = email(&config, &settings, &message("Hi")).unwrap();
        let text = String::from_utf8(email.formatted()).unwrap();
        assert!(text.contains("From: \"Acme IT\" <noreply@example.com>"), "{text}");
        assert!(text.contains("Reply-To: it@example.com"), "{text}");
        assert!(text.contains("Content-Language: fr-FR"), "{text}");
        assert!(text.contains("Message-ID: <m1@example.com>"), "{text}");
        let mut bad = message("Hi");
        bad.to = "jdoe".into();
        assert!(email_err(&config, &settings, &bad).contains("not an email address"));
    }

    fn email_err(config: &MailConfig, settings: &MailSettings, m: &OutboxMessage) -> String {
        match email(config, settings, m) {
            Ok(_) => String::new(),
            Err(e) => e,
        }
    }
}
