//! The `account` and `token` commands: on a stopped server's store, or with `--url` through a running
//! server's operator API (the operator token from `USERSYNC_OPERATOR_TOKEN`). Both ways print the same.

use std::time::Duration;

use serde_json::{Value, json};
use usersync::store::{AccountId, Actor, Store, TokenKind};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// An account as the commands print it.
pub struct AccountRow {
    pub id: u32,
    pub name: String,
    pub created: String,
    pub status: String,
}

/// A token as the commands print it (never its secret).
pub struct TokenRow {
    pub id: String,
    pub account: String,
    pub kind: String,
    pub name: String,
    pub created: String,
    pub expires_at: Option<String>,
}

/// Where the commands act.
pub enum Target {
    Local(Store),
    Remote(Remote),
}

/// A running server's operator API.
pub struct Remote {
    base: String,
    token: String,
    client: reqwest::blocking::Client,
}

const ACTOR: &str = "cli";

impl Remote {
    pub fn new(url: &str) -> Result<Remote> {
        let token = std::env::var("USERSYNC_OPERATOR_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or("--url needs the operator token in USERSYNC_OPERATOR_TOKEN")?;
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build()?;
        Ok(Remote { base: format!("{}/operator/v1", url.trim_end_matches('/')), token, client })
    }

    /// Sends a request; the JSON answer (`Null` for none), or the server's message as the error.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body.to_string());
        }
        let res = req.send()?;
        let status = res.status();
        let text = res.text()?;
        let value: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text)? };
        if !status.is_success() {
            let message = value["message"].as_str().unwrap_or(&text);
            return Err(format!("the server answered {}: {message}", status.as_u16()).into());
        }
        Ok(value)
    }

    /// The id of the account named `name`.
    fn account_id(&self, name: &str) -> Result<u32> {
        let found = self.call(reqwest::Method::GET, &format!("/accounts?name={}", encode(name)), None)?;
        found["Resources"][0]["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| format!("no account named '{name}'").into())
    }

    fn accounts(&self) -> Result<Vec<AccountRow>> {
        let mut out = Vec::new();
        loop {
            let page = self.call(
                reqwest::Method::GET,
                &format!("/accounts?startIndex={}&count=200", out.len() + 1),
                None,
            )?;
            let items = page["Resources"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                return Ok(out);
            }
            out.extend(items.iter().map(account_row));
        }
    }
}

fn account_row(v: &Value) -> AccountRow {
    AccountRow {
        id: v["id"].as_u64().and_then(|id| u32::try_from(id).ok()).unwrap_or(0),
        name: text(&v["name"]),
        created: text(&v["created"]),
        status: text(&v["status"]),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn local_status(a: &usersync::store::Account) -> String {
    match (&a.deleting, &a.suspended) {
        (Some(_), _) => "deleting",
        (None, Some(_)) => "suspended",
        (None, None) => "active",
    }
    .to_string()
}

fn local_id(store: &Store, name: &str) -> Result<AccountId> {
    Ok(store.account(name)?.ok_or_else(|| format!("no account named '{name}'"))?.id)
}

impl Target {
    /// Creates the account; through the API, also its first tokens, whose lines are returned to print.
    pub fn create_account(&self, name: &str) -> Result<(AccountRow, Vec<String>)> {
        match self {
            Target::Local(store) => {
                let a = store.create_account(name)?;
                Ok((
                    AccountRow { id: a.id.0, status: local_status(&a), name: a.name, created: a.created },
                    vec![],
                ))
            }
            Target::Remote(r) => {
                let v = r.call(reqwest::Method::POST, "/accounts", Some(json!({"name": name})))?;
                let lines = vec![
                    format!("SCIM base URL: {}", text(&v["scimBaseUrl"])),
                    "These tokens are shown once; keep them now:".into(),
                    format!("  scim token: {}", text(&v["scimToken"]["secret"])),
                    format!("  admin token: {}", text(&v["adminToken"]["secret"])),
                ];
                Ok((account_row(&v), lines))
            }
        }
    }

    pub fn accounts(&self) -> Result<Vec<AccountRow>> {
        match self {
            Target::Local(store) => Ok(store
                .accounts()?
                .into_iter()
                .map(|a| AccountRow {
                    id: a.id.0,
                    status: local_status(&a),
                    name: a.name,
                    created: a.created,
                })
                .collect()),
            Target::Remote(r) => r.accounts(),
        }
    }

    /// `suspend`, `resume` or `delete` of the account named `name`.
    pub fn change_account(&self, name: &str, change: &str) -> Result<()> {
        match self {
            Target::Local(store) => {
                let acct = local_id(store, name)?;
                let actor = Actor(ACTOR.into());
                match change {
                    "suspend" => store.suspend_account(acct, &actor)?,
                    "resume" => store.resume_account(acct, &actor)?,
                    _ => store.delete_account(acct)?,
                };
                Ok(())
            }
            Target::Remote(r) => {
                let id = r.account_id(name)?;
                match change {
                    "delete" => {
                        r.call(reqwest::Method::DELETE, &format!("/accounts/{id}?confirm={id}"), None)?
                    }
                    other => r.call(reqwest::Method::POST, &format!("/accounts/{id}/{other}"), None)?,
                };
                Ok(())
            }
        }
    }

    /// Creates a token; its row and secret.
    pub fn create_token(
        &self,
        account: &str,
        kind: TokenKind,
        name: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(TokenRow, String)> {
        match self {
            Target::Local(store) => {
                let acct = local_id(store, account)?;
                let (t, secret) =
                    store.create_token_expiring(acct, kind, name, expires_at, &Actor(ACTOR.into()))?;
                Ok((local_token(t, account), secret))
            }
            Target::Remote(r) => {
                let id = r.account_id(account)?;
                let mut body = json!({"name": name, "kind": kind.as_str()});
                if let Some(at) = expires_at {
                    body["expiresAt"] = json!(usersync::clock::timestamp(at));
                }
                let v = r.call(reqwest::Method::POST, &format!("/accounts/{id}/tokens"), Some(body))?;
                Ok((remote_token(&v, account), text(&v["secret"])))
            }
        }
    }

    /// The tokens of one account or of all.
    pub fn tokens(&self, account: Option<&str>) -> Result<Vec<TokenRow>> {
        match self {
            Target::Local(store) => {
                let filter = account.map(|a| local_id(store, a)).transpose()?;
                let names: std::collections::HashMap<_, _> =
                    store.accounts()?.into_iter().map(|a| (a.id, a.name)).collect();
                Ok(store
                    .tokens(filter)?
                    .into_iter()
                    .map(|t| {
                        let name = names.get(&t.account).cloned().unwrap_or_else(|| "?".into());
                        local_token(t, &name)
                    })
                    .collect())
            }
            Target::Remote(r) => {
                let accounts = match account {
                    Some(name) => vec![(r.account_id(name)?, name.to_string())],
                    None => r.accounts()?.into_iter().map(|a| (a.id, a.name)).collect(),
                };
                let mut out = Vec::new();
                for (id, name) in accounts {
                    let page =
                        r.call(reqwest::Method::GET, &format!("/accounts/{id}/tokens?count=1000"), None)?;
                    for t in page["Resources"].as_array().into_iter().flatten() {
                        out.push(remote_token(t, &name));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Revokes the account's token `id`; its row.
    pub fn revoke_token(&self, account: &str, id: &str) -> Result<TokenRow> {
        match self {
            Target::Local(store) => {
                let t = store.revoke_token(local_id(store, account)?, id, &Actor(ACTOR.into()))?;
                Ok(local_token(t, account))
            }
            Target::Remote(r) => {
                let row = self
                    .tokens(Some(account))?
                    .into_iter()
                    .find(|t| t.id == id)
                    .ok_or_else(|| format!("account '{account}' has no token {id}"))?;
                let acct = r.account_id(account)?;
                r.call(reqwest::Method::DELETE, &format!("/accounts/{acct}/tokens/{}", encode(id)), None)?;
                Ok(row)
            }
        }
    }

    pub fn finish(self) {
        if let Target::Local(store) = self {
            store.shutdown();
        }
    }
}

fn local_token(t: usersync::store::TokenInfo, account: &str) -> TokenRow {
    TokenRow {
        id: t.id,
        account: account.to_string(),
        kind: t.kind.as_str().to_string(),
        name: t.name,
        created: t.created,
        expires_at: t.expires_at,
    }
}

fn remote_token(v: &Value, account: &str) -> TokenRow {
    TokenRow {
        id: text(&v["id"]),
        account: account.to_string(),
        kind: text(&v["kind"]),
        name: text(&v["name"]),
        created: text(&v["created"]),
        expires_at: v["expiresAt"].as_str().map(str::to_string),
    }
}
