//! The admin console in real headless Chromium (Debian's `chromium` and `chromium-driver`), driven over
//! WebDriver by fantoccini: the User Sync workflow of the product pages, sessions and CSRF, the pages
//! without JavaScript, and axe-core on every page (no serious or critical violation). Controls are found
//! by role and accessible name. Without a browser the tests say they were skipped and why; with `CI` set
//! they fail instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use usersync::app::Settings;
use usersync::clock::ManualClock;
use usersync::store::{Actor, DurabilityMode, TokenKind};

use crate::helpers::{ADMIN_TOKEN, SCIM_TOKEN, TestApp, id, q, spawn_with_clock};

/// axe-core, vendored under tests/vendor/axe-core with its licence.
const AXE: &str = include_str!("../vendor/axe-core/axe.min.js");

const WAIT: Duration = Duration::from_secs(15);

/// A headless Chromium behind its own ChromeDriver.
struct Browser {
    client: Option<Client>,
    driver: Child,
    runtime: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

fn program(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

impl Browser {
    /// Starts ChromeDriver and a browser session, with or without JavaScript.
    fn start(javascript: bool) -> Result<Browser, String> {
        // fantoccini's TLS stack takes the process's rustls provider: the server's (ring)
        let driver_path = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        for p in [&driver_path, &chromium] {
            if !Path::new(p).exists() {
                return Err(format!("{} is not installed", p.display()));
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{} does not start: {e}", driver_path.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut browser = Browser { client: None, driver, runtime, _profile: profile };
        let mut options = json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", format!("--user-data-dir={}", browser._profile.path().display())],
        });
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{port}");
        // rustls is built with ring (the server's) and aws-lc-rs (reqwest's): fantoccini takes the process
        // default provider, which must then be chosen.
        usersync::app::install_crypto_provider();
        let client = browser.runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let builder = ClientBuilder::rustls().map(|mut b| {
                    b.capabilities(caps.clone());
                    b
                });
                let attempt = match builder {
                    Ok(b) => b.connect(&url).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match attempt {
                    Ok(client) => return Ok(client),
                    Err(e) if Instant::now() > deadline => return Err(format!("no browser session: {e}")),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })?;
        browser.client = Some(client);
        Ok(browser)
    }

    fn run<T>(&self, f: impl AsyncFnOnce(&Client) -> T) -> T {
        let client = self.client.as_ref().expect("a session");
        self.runtime.block_on(f(client))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A browser, or `None` after saying why the test is skipped; in CI a missing browser fails the test.
fn browser(javascript: bool, test: &str) -> Option<Browser> {
    match Browser::start(javascript) {
        Ok(b) => Some(b),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: the browser tests must run in CI, but no browser could be started: {why}")
        }
        Err(why) => {
            eprintln!(
                "SKIPPED {test}: no browser could be started ({why}); install Debian's chromium and \
                 chromium-driver to run the console's browser tests (in CI they fail instead)"
            );
            None
        }
    }
}

/// A server's settings for a console test: its own port, data in `dir`, the test tokens.
fn console_settings(dir: &tempfile::TempDir) -> Settings {
    let mut settings = Settings::new(dir.path());
    settings.listen = "127.0.0.1:0".into();
    settings.durability = DurabilityMode::Flush;
    settings.scim_token = Some(SCIM_TOKEN.into());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    settings
}

/// A server whose clock the test moves, with an account ready for the workflow.
fn console_app() -> (TestApp, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = console_settings(&dir);
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_with_clock(settings, clock.clone());
    (app, clock, dir)
}

fn put_product(app: &TestApp, id: &str, name: &str, seats: u64) {
    let body = json!({"name": name, "seats": seats, "requires": []});
    let res = app.admin(Method::PUT, &format!("/products/{id}"), Some(&body));
    assert!(res.status().is_success(), "product {id}: {}", res.status());
}

/// Products, a user group, directory groups and five members of Sales.
fn seed(app: &TestApp) -> Vec<String> {
    put_product(app, "meeting", "Meeting", 100);
    put_product(app, "webinar", "Webinar", 2);
    let body = json!({"name": "Sales team"});
    assert!(app.admin(Method::PUT, "/user-groups/sales-team", Some(&body)).status().is_success());
    let sales = id(&app.create_group("Sales"));
    app.create_group("Support");
    app.create_group("Marketing");
    let users: Vec<String> = (1..=5)
        .map(|i| {
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("seller{i}@example.com"), "active": true});
            id(&app.create_user(&body))
        })
        .collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    app.add_members(&sales, &refs);
    users
}

/// `"` cannot appear in the names the tests look for.
fn xpath_text(text: &str) -> String {
    assert!(!text.contains('"'), "{text}");
    format!("\"{text}\"")
}

/// The element of `role` whose accessible name (its text content; the console gives these controls no
/// aria-label) is `name`.
async fn by_role(c: &Client, role: &str, name: &str) -> Element {
    let n = xpath_text(name);
    let path = match role {
        "button" => format!("//button[normalize-space(.)={n}] | //input[@type='submit' and @value={n}]"),
        "link" => format!("//a[normalize-space(.)={n}]"),
        "switch" => format!("//*[@role='switch'][normalize-space(.)={n}]"),
        "heading" => format!("//*[self::h1 or self::h2][normalize-space(.)={n}]"),
        other => panic!("no locator for role {other}"),
    };
    match c.wait().at_most(WAIT).for_element(Locator::XPath(&path)).await {
        Ok(e) => e,
        Err(e) => panic!("no {role} named {name:?} on {}: {e}", page_text(c).await),
    }
}

/// The form control whose `<label>` reads `label`.
async fn labelled(c: &Client, label: &str) -> Element {
    let path = format!("//label[normalize-space(.)={}]", xpath_text(label));
    let found = c.wait().at_most(WAIT).for_element(Locator::XPath(&path)).await;
    let label_el = match found {
        Ok(e) => e,
        Err(e) => panic!("no field labelled {label:?} on {}: {e}", page_text(c).await),
    };
    let target = label_el.attr("for").await.unwrap().expect("labels name their field");
    c.find(Locator::Id(&target)).await.unwrap()
}

async fn page_text(c: &Client) -> String {
    let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
    let text = match c.find(Locator::Css("main")).await {
        Ok(main) => main.text().await.unwrap_or_default(),
        Err(_) => c.source().await.unwrap_or_default(),
    };
    format!("{url}:\n{text}")
}

/// The page's heading; read again when a swap replaced the element between finding and reading it.
async fn h1(c: &Client) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = c.wait().at_most(WAIT).for_element(Locator::Css("h1")).await.unwrap();
        match found.text().await {
            Ok(text) => return text,
            Err(e) => assert!(Instant::now() < deadline, "no heading: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The page's heading once it reads `want`, or, after [`WAIT`], whatever it reads then: a click that loads
/// another page returns before the new page replaced the old one's heading.
async fn h1_becomes(c: &Client, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let heading = h1(c).await;
        if heading == want || Instant::now() > deadline {
            return heading;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_string()
}

/// Waits until the JavaScript expression is true.
async fn wait_until(c: &Client, expression: &str, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = c.execute(&format!("return !!({expression});"), vec![]).await.unwrap();
        if v == json!(true) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not so after {WAIT:?} on {}", page_text(c).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page's text contains `text` (for pages without JavaScript: reloads each try).
async fn wait_for_text(c: &Client, text: &str, reload: bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if page_text(c).await.contains(text) {
            return;
        }
        assert!(Instant::now() < deadline, "no {text:?} on {}", page_text(c).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if reload {
            c.refresh().await.unwrap();
        }
    }
}

/// axe-core on the current page: no violation of impact serious or critical.
async fn accessible(c: &Client, page: &str) {
    c.execute(&format!("{AXE}\n;return true;"), vec![]).await.unwrap();
    let script = "const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
          .catch(e => done(['axe failed: ' + e]));";
    let violations = c.execute_async(script, vec![]).await.unwrap();
    assert_eq!(violations, json!([]), "accessibility of {page}");
}

/// The directory groups of the rules table, top to bottom (read again if htmx or a page load replaced
/// the table while it was read).
async fn rule_order(c: &Client) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match try_rule_order(c).await {
            Ok(order) => return order,
            Err(e) if Instant::now() > deadline => panic!("the rules table cannot be read: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn try_rule_order(c: &Client) -> Result<Vec<String>, fantoccini::error::CmdError> {
    let mut out = Vec::new();
    for cell in c.find_all(Locator::Css("#rules-body th[scope=row]")).await? {
        out.push(cell.text().await?);
    }
    Ok(out)
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/console/")).await.unwrap();
    assert_eq!(path_of(c).await, "/console/signin", "a signed-out visitor is sent to sign in");
    labelled(c, "Admin token").await.send_keys(token).await.unwrap();
    by_role(c, "button", "Sign in").await.click().await.unwrap();
    by_role(c, "heading", "User Sync").await;
    assert!(["/console/", "/console"].contains(&path_of(c).await.as_str()), "on User Sync");
}

async fn choose(c: &Client, label: &str, option: &str) {
    labelled(c, label).await.select_by_label(option).await.unwrap();
}

async fn tick(c: &Client, label: &str) {
    let field = labelled(c, label).await;
    if !field.is_selected().await.unwrap() {
        field.click().await.unwrap();
    }
}

/// Fills the rule form for `group` with `products` and an admin role (`None`, `full`, `manager`).
async fn fill_rule(c: &Client, group: &str, description: &str, products: &[&str], role: Option<&str>) {
    choose(c, "Directory group", group).await;
    labelled(c, "Description").await.send_keys(description).await.unwrap();
    for p in products {
        tick(c, p).await;
    }
    match role {
        None => {}
        Some("full") => {
            tick(c, "Administrator for this account").await;
            tick(c, "Full access to all account privileges").await;
        }
        Some(_) => {
            tick(c, "Administrator for this account").await;
            tick(c, "Manager for specified group(s) with limited privileges").await;
            tick(c, "Add users to the managed groups").await;
            tick(c, "Sales team").await;
        }
    }
    choose(c, "Default language", "Deutsch").await;
}

/// Drags the row of `from` by its handle onto the top half of the row of `to`, with the mouse.
async fn drag_rule(c: &Client, from: &str, to: &str) {
    let row = |g: &str| format!("//tr[th[normalize-space(.)={}]]", xpath_text(g));
    let handle =
        c.find(Locator::XPath(&format!("{}//*[contains(@class,'handle')]", row(from)))).await.unwrap();
    let target = c.find(Locator::XPath(&row(to))).await.unwrap();
    let (_, _, _, height) = target.rectangle().await.unwrap();
    let mouse = MouseActions::new("mouse".into())
        .then(PointerAction::MoveToElement { element: handle, duration: None, x: 0.0, y: 0.0 })
        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
        .then(PointerAction::MoveToElement {
            element: target.clone(),
            duration: Some(Duration::from_millis(150)),
            x: 0.0,
            y: 0.0,
        })
        .then(PointerAction::MoveToElement {
            element: target,
            duration: Some(Duration::from_millis(150)),
            x: 0.0,
            y: -height / 4.0,
        })
        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
    c.perform_actions(mouse).await.unwrap();
    c.release_actions().await.unwrap();
}

/// Saves a screenshot for the README when `USERSYNC_SCREENSHOTS` names a directory.
async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("USERSYNC_SCREENSHOTS") else { return };
    let png = c.screenshot().await.unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

#[test]
fn the_user_sync_workflow_in_chromium() {
    let Some(browser) = browser(true, "console::the_user_sync_workflow_in_chromium") else { return };
    let (app, clock, _dir) = console_app();
    seed(&app);
    let base = format!("http://{}", app.addr);

    browser.run(async |c| {
        c.goto(&format!("{base}/console/rules")).await.unwrap();
        assert_eq!(path_of(c).await, "/console/signin");
        accessible(c, "sign-in").await;
        // a wrong token is refused next to the field
        labelled(c, "Admin token").await.send_keys(SCIM_TOKEN).await.unwrap();
        by_role(c, "button", "Sign in").await.click().await.unwrap();
        wait_for_text(c, "This is a SCIM token; the console needs an admin token.", false).await;
        accessible(c, "sign-in with an error").await;
        labelled(c, "Admin token").await.send_keys(ADMIN_TOKEN).await.unwrap();
        by_role(c, "button", "Sign in").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rules").await, "Rules", "back to the page asked for");
        let cookies = c.get_all_cookies().await.unwrap();
        let session = cookies.iter().find(|k| k.name() == "usersync_console").expect("a session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert!(session.same_site().is_some_and(|s| s.is_strict()), "SameSite=Strict");

        // one rule per admin-role variant, through the form
        by_role(c, "link", "Create your first rule").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Create your first rule").await, "Create your first rule");
        accessible(c, "the rule form").await;
        // a field error appears next to its field, and nothing typed is lost
        labelled(c, "Description").await.send_keys("no group yet").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        let error = c.wait().at_most(WAIT).for_element(Locator::Id("group-error")).await.unwrap();
        assert_eq!(error.text().await.unwrap(), "Choose a directory group.");
        assert_eq!(
            labelled(c, "Description").await.prop("value").await.unwrap().as_deref(),
            Some("no group yet")
        );
        accessible(c, "the rule form with an error").await;
        labelled(c, "Description").await.clear().await.unwrap();

        fill_rule(
            c,
            "Sales",
            "Sellers get Webinar",
            &["Meeting (0 of 100 seats used)", "Webinar (0 of 2 seats used)"],
            Some("full"),
        )
        .await;
        // before saving: the impact, from the preview (five sellers, two Webinar seats)
        by_role(c, "button", "Preview the impact").await.click().await.unwrap();
        wait_for_text(c, "Webinar: 5 users gain it, 0 users lose it; 3 seats short", false).await;
        wait_for_text(c, "Meeting: 5 users gain it, 0 users lose it; enough seats", false).await;
        wait_for_text(c, "would fail: out of licenses for Webinar", false).await;
        assert!(
            labelled(c, "Webinar (0 of 2 seats used)").await.is_selected().await.unwrap(),
            "the form keeps its values"
        );
        accessible(c, "the rule form with its impact").await;
        screenshot(c, "add-rule").await;
        by_role(c, "button", "Save & add another").await.click().await.unwrap();
        wait_for_text(c, "Rule 1 was saved. Add another rule.", false).await;
        assert_eq!(h1_becomes(c, "Add rule").await, "Add rule");
        // the group search narrows the chooser as it is typed, without a page load
        labelled(c, "Search directory groups").await.send_keys("upp").await.unwrap();
        wait_until(c, "document.querySelectorAll('#group option').length === 2", "the chooser narrowed")
            .await;
        wait_for_text(c, "Showing 1 of 1 matching groups", false).await;
        assert_eq!(path_of(c).await, "/console/rules/new");
        fill_rule(c, "Support", "Support managers", &["Meeting (0 of 100 seats used)"], Some("manager"))
            .await;
        by_role(c, "button", "Save & add another").await.click().await.unwrap();
        wait_for_text(c, "Rule 2 was saved.", false).await;
        fill_rule(c, "Marketing", "Marketing", &[], None).await;
        by_role(c, "button", "Save").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rules").await, "Rules");
        assert_eq!(rule_order(c).await, ["Sales", "Support", "Marketing"]);
        wait_for_text(c, "The rule for Marketing was saved as number 3 of 3.", false).await;
        accessible(c, "the rules").await;
        screenshot(c, "rules").await;
        // each rule opens in its form; Delete asks first
        by_role(c, "link", "Marketing").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rule 3").await, "Rule 3");
        assert_eq!(
            labelled(c, "Description").await.prop("value").await.unwrap().as_deref(),
            Some("Marketing")
        );
        accessible(c, "a rule").await;
        by_role(c, "link", "Delete rule").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Delete rule 3?").await, "Delete rule 3?");
        accessible(c, "the delete confirmation").await;
        by_role(c, "link", "Cancel").await.click().await.unwrap();
        by_role(c, "link", "Rules").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rules").await, "Rules");
        assert_eq!(rule_order(c).await, ["Sales", "Support", "Marketing"], "cancel deletes nothing");
    });
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    assert_eq!(rules[0]["admin"], json!({"access": "full"}));
    assert_eq!(
        rules[1]["admin"],
        json!({"access": "manager", "privileges": ["users.add"], "managedGroups": ["sales-team"]})
    );
    assert_eq!(rules[2]["admin"], Value::Null);
    assert_eq!(rules[0]["products"], json!(["meeting", "webinar"]));
    assert_eq!(rules[0]["language"], json!("de_DE"));
    let marketing = rules[2]["id"].as_str().unwrap().to_string();

    browser.run(async |c| {
        // keyboard: Move up with Enter; htmx swaps the table, focus stays on the button, the live
        // region says where the rule is now
        let up = by_role(c, "button", "Move up the rule for Marketing").await;
        up.send_keys(&Key::Enter.to_string()).await.unwrap();
        wait_until(c, "document.querySelector('#rules-body tr:nth-child(2) th').textContent === 'Marketing'", "moved up").await;
        assert_eq!(rule_order(c).await, ["Sales", "Marketing", "Support"]);
        wait_until(c, &format!("document.activeElement && document.activeElement.id === 'up-{marketing}'"), "focus kept").await;
        wait_until(c, "document.getElementById('rules-announce').textContent.includes('The rule for Marketing is now number 2 of 3.')", "announced").await;
        assert_eq!(path_of(c).await, "/console/rules", "no page load");
        // mouse: drag Support onto the first row
        drag_rule(c, "Support", "Sales").await;
        wait_until(c, "document.querySelector('#rules-body tr:nth-child(1) th').textContent === 'Support'", "dragged").await;
        assert_eq!(rule_order(c).await, ["Support", "Sales", "Marketing"]);
        wait_until(c, "document.getElementById('rules-announce').textContent.includes('The rule for Support is now number 1 of 3.')", "drop announced").await;
        accessible(c, "the rules after moving").await;
    });
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    let order: Vec<&str> =
        rules.as_array().unwrap().iter().map(|r| r["description"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        ["Support managers", "Sellers get Webinar", "Marketing"],
        "the store has the new order"
    );

    browser.run(async |c| {
        // switch User Sync on: at once, without a page load
        by_role(c, "link", "User Sync").await.click().await.unwrap();
        let switch = by_role(c, "switch", "User Sync is on").await;
        assert_eq!(switch.attr("aria-checked").await.unwrap().as_deref(), Some("false"));
        accessible(c, "User Sync, off").await;
        switch.click().await.unwrap();
        wait_until(
            c,
            "document.getElementById('sync-switch').getAttribute('aria-checked') === 'true'",
            "switched on",
        )
        .await;
        // five sellers, two Webinar seats: the banner appears by itself (polling), with the count
        wait_until(c, "document.getElementById('banner-outOfLicenses') !== null", "a banner").await;
        let banner = c.find(Locator::Id("banner-outOfLicenses-text")).await.unwrap();
        assert_eq!(banner.text().await.unwrap(), "3 users could not be synced: out of licenses for Webinar");
        accessible(c, "User Sync with a banner").await;
        screenshot(c, "user-sync").await;
        by_role(c, "link", "Details").await.click().await.unwrap();
        assert_eq!(
            h1_becomes(c, "3 users could not be synced: out of licenses for Webinar").await,
            "3 users could not be synced: out of licenses for Webinar"
        );
        let names = c.find_all(Locator::Css("tbody th[scope=row]")).await.unwrap();
        assert_eq!(names.len(), 3);
        accessible(c, "Details").await;
        // Retry sync while seats are still short: they stay failing, and the page says so
        by_role(c, "button", "Retry sync").await.click().await.unwrap();
        wait_for_text(c, "Retried 3: 0 synced, 3 still failing.", false).await;
        // raise the seats; the store puts the failing users up again, and the banner goes
        by_role(c, "link", "Products").await.click().await.unwrap();
        accessible(c, "Products").await;
        let seats = labelled(c, "Seats for Webinar").await;
        seats.clear().await.unwrap();
        seats.send_keys("1").await.unwrap();
        by_role(c, "button", "Save seats for Webinar").await.click().await.unwrap();
        let error = c.wait().at_most(WAIT).for_element(Locator::Id("seats-webinar-error")).await.unwrap();
        assert!(
            error.text().await.unwrap().contains("seats cannot go below"),
            "lowering below use is refused next to the field"
        );
        let seats = labelled(c, "Seats for Webinar").await;
        seats.clear().await.unwrap();
        seats.send_keys("5").await.unwrap();
        by_role(c, "button", "Save seats for Webinar").await.click().await.unwrap();
        wait_for_text(c, "The seats of Webinar were saved.", false).await;
        by_role(c, "link", "User Sync").await.click().await.unwrap();
        wait_until(c, "document.getElementById('banner-outOfLicenses') === null", "the banner is gone").await;
        // the history shows each step, newest first
        by_role(c, "link", "Administrative Activity History").await.click().await.unwrap();
        accessible(c, "Administrative Activity History").await;
        let text = page_text(c).await;
        for step in ["Product updated", "Failures retried", "Sync enabled", "Rules reordered", "Rule created"]
        {
            assert!(text.contains(step), "{step} in the history: {text}");
        }
        let first = text.find("Product updated").unwrap();
        let last = text.find("Rule created").unwrap();
        assert!(first < last, "newest first");
        // filtered by type
        labelled(c, "Type").await.send_keys("sync.failed").await.unwrap();
        by_role(c, "button", "Filter").await.click().await.unwrap();
        wait_for_text(c, "Sync failed", false).await;
        let whats = c.find_all(Locator::Css("tbody th[scope=row]")).await.unwrap();
        assert!(!whats.is_empty());
        for what in whats {
            assert_eq!(what.text().await.unwrap(), "Sync failed");
        }
        // the SCIM requests that made the users, in the provisioning log, filtered in place by htmx
        app.store.flush_requests().unwrap();
        by_role(c, "link", "Provisioning Log").await.click().await.unwrap();
        accessible(c, "Provisioning Log").await;
        wait_for_text(c, "201 Created", false).await;
        labelled(c, "Answer").await.send_keys("5xx").await.unwrap();
        by_role(c, "button", "Filter").await.click().await.unwrap();
        wait_for_text(c, "No request matches these filters.", false).await;
        accessible(c, "Provisioning Log, filtered").await;
    });
    let webinar = app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK);
    assert_eq!(webinar["used"], json!(5));

    browser.run(async |c| {
        // a form without the session's CSRF token is refused, and changes nothing
        c.goto(&format!("{base}/console/")).await.unwrap();
        by_role(c, "switch", "User Sync is on").await;
        c.execute(
            "document.querySelector('.switch-form input[name=csrf]').remove(); \
                   document.querySelector('.switch-form').submit();",
            vec![],
        )
        .await
        .unwrap();
        by_role(c, "heading", "Form refused").await;
        accessible(c, "the refused form").await;
        // the error page of an unknown address
        c.goto(&format!("{base}/console/no-such-page")).await.unwrap();
        assert_eq!(h1_becomes(c, "Not found").await, "Not found");
        accessible(c, "not found").await;
        c.goto(&format!("{base}/console/")).await.unwrap();
        let switch = by_role(c, "switch", "User Sync is on").await;
        assert_eq!(switch.attr("aria-checked").await.unwrap().as_deref(), Some("true"), "still on");
        // Sign out: the session ends
        by_role(c, "button", "Sign out").await.click().await.unwrap();
        wait_for_text(c, "You have signed out.", false).await;
        c.goto(&format!("{base}/console/rules")).await.unwrap();
        assert_eq!(path_of(c).await, "/console/signin");
        // 12 hours idle: the session expires
        sign_in(c, &base, ADMIN_TOKEN).await;
        clock.advance(chrono::Duration::hours(11) + chrono::Duration::minutes(59));
        c.goto(&format!("{base}/console/rules")).await.unwrap();
        assert_eq!(h1_becomes(c, "Rules").await, "Rules", "11:59 idle is still signed in");
        clock.advance(chrono::Duration::hours(12));
        c.goto(&format!("{base}/console/rules")).await.unwrap();
        assert_eq!(path_of(c).await, "/console/signin", "12 hours idle: sign in again");
    });

    // tokens: a new one's secret is shown once; revoking it ends the sessions it opened, through the
    // console as through the admin API
    let secret = browser.run(async |c| {
        sign_in(c, &base, ADMIN_TOKEN).await;
        by_role(c, "link", "Tokens").await.click().await.unwrap();
        accessible(c, "Tokens").await;
        by_role(c, "button", "Create token").await.click().await.unwrap();
        wait_for_text(c, "A token needs a name.", false).await;
        labelled(c, "Name").await.send_keys("console-test").await.unwrap();
        choose(c, "Kind", "Admin (admin API and console)").await;
        by_role(c, "button", "Create token").await.click().await.unwrap();
        let secret = labelled(c, "Secret of console-test").await.prop("value").await.unwrap().unwrap();
        assert!(secret.starts_with("us_"), "{secret}");
        accessible(c, "Tokens with a new secret").await;
        by_role(c, "button", "Sign out").await.click().await.unwrap();
        sign_in(c, &base, &secret).await;
        by_role(c, "link", "Tokens").await.click().await.unwrap();
        by_role(c, "link", "Revoke the token console-test").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Revoke the token console-test?").await, "Revoke the token console-test?");
        wait_for_text(c, "You signed in with this token: revoking it signs you out.", false).await;
        accessible(c, "the revoke confirmation").await;
        by_role(c, "button", "Revoke token").await.click().await.unwrap();
        wait_until(c, "location.pathname === '/console/signin'", "signed out by the revocation").await;
        secret
    });
    assert!(app.store.authenticate(&secret).unwrap().is_none(), "revoked");
    let acct = app.store.account("default").unwrap().unwrap();
    let (info, secret) =
        app.store.create_token(acct.id, TokenKind::Admin, "api-revoked", &Actor::engine()).unwrap();
    browser.run(async |c| {
        sign_in(c, &base, &secret).await;
    });
    app.admin_ok(Method::DELETE, &format!("/tokens/{}", info.id), None, StatusCode::NO_CONTENT);
    browser.run(async |c| {
        c.goto(&format!("{base}/console/products")).await.unwrap();
        assert_eq!(path_of(c).await, "/console/signin", "the revoked token's session has ended");
    });
}

#[test]
fn without_javascript_rules_are_created_and_reordered_with_plain_forms() {
    let Some(browser) =
        browser(false, "console::without_javascript_rules_are_created_and_reordered_with_plain_forms")
    else {
        return;
    };
    let (app, _clock, _dir) = console_app();
    seed(&app);
    let base = format!("http://{}", app.addr);
    browser.run(async |c| {
        sign_in(c, &base, ADMIN_TOKEN).await;
        let switch = by_role(c, "switch", "User Sync is on").await;
        switch.click().await.unwrap();
        wait_for_text(c, "Sync is running", false).await;
        by_role(c, "link", "Rules").await.click().await.unwrap();
        by_role(c, "link", "Create your first rule").await.click().await.unwrap();
        // the group search is a plain GET that keeps what was typed
        labelled(c, "Description").await.send_keys("typed before searching").await.unwrap();
        labelled(c, "Search directory groups").await.send_keys("ark").await.unwrap();
        by_role(c, "button", "Search").await.click().await.unwrap();
        wait_for_text(c, "Showing 1 of 1 matching groups", false).await;
        assert_eq!(
            labelled(c, "Description").await.prop("value").await.unwrap().as_deref(),
            Some("typed before searching")
        );
        choose(c, "Directory group", "Marketing").await;
        by_role(c, "button", "Save & add another").await.click().await.unwrap();
        wait_for_text(c, "Rule 1 was saved.", false).await;
        fill_rule(c, "Sales", "Sales", &["Meeting (0 of 100 seats used)"], None).await;
        by_role(c, "button", "Save").await.click().await.unwrap();
        // the list is read once the redirect after the post has arrived
        wait_for_text(c, "The rule for Sales was saved as number 2 of 2.", false).await;
        assert_eq!(rule_order(c).await, ["Marketing", "Sales"]);
        by_role(c, "button", "Move down the rule for Marketing").await.click().await.unwrap();
        wait_for_text(c, "The rule for Marketing is now number 2 of 2.", false).await;
        assert_eq!(rule_order(c).await, ["Sales", "Marketing"]);
        assert!(
            c.current_url().await.unwrap().as_str().contains("/console/rules?moved="),
            "a post, a redirect, a get"
        );
        // open a rule, edit it, save; delete another after the confirmation
        by_role(c, "link", "Sales").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rule 1").await, "Rule 1");
        let description = labelled(c, "Description").await;
        description.clear().await.unwrap();
        description.send_keys("Sales, edited").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "The rule for Sales was saved as number 1 of 2.", false).await;
        by_role(c, "link", "Marketing").await.click().await.unwrap();
        by_role(c, "link", "Delete rule").await.click().await.unwrap();
        by_role(c, "button", "Delete rule").await.click().await.unwrap();
        wait_for_text(c, "The rule was deleted.", false).await;
        assert_eq!(rule_order(c).await, ["Sales"]);
    });
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    assert_eq!(rules.as_array().unwrap().len(), 1);
    assert_eq!(rules[0]["description"], json!("Sales, edited"));
    assert_eq!(rules[0]["products"], json!(["meeting"]), "the rest of the rule is kept");
}

/// A form body, URL-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", q(k), q(v))).collect::<Vec<_>>().join("&")
}

/// Without a browser: the console's headers, cookies and CSRF checks over plain HTTP.
#[test]
fn console_pages_carry_their_security_headers_and_refuse_forms_without_the_csrf_token() {
    let (app, _clock, _dir) = console_app();
    let client =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let base = format!("http://{}", app.addr);
    let res = client.get(format!("{base}/console/")).send().unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/console/signin?next=/console");
    let res = client.get(format!("{base}/console/signin")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let signin_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        signin_cookie.contains("HttpOnly") && signin_cookie.contains("SameSite=Strict"),
        "{signin_cookie}"
    );
    assert!(!signin_cookie.contains("Secure"), "plain HTTP: no Secure");
    let body = res.text().unwrap();
    assert!(!body.contains("<script>") && !body.contains("style="), "no inline script or style");

    // sign-in without the form's token is refused
    let res = client
        .post(format!("{base}/console/signin"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("token", ADMIN_TOKEN)]))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // with it, a session
    let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let jar = signin_cookie.split(';').next().unwrap().to_string();
    let res = client
        .post(format!("{base}/console/signin"))
        .header("Cookie", &jar)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", csrf.as_str()), ("token", ADMIN_TOKEN), ("next", "/console/")]))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("usersync_console="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/console")
    );
    let session = session.split(';').next().unwrap().to_string();
    // behind a TLS proxy the cookies are Secure
    let res =
        client.get(format!("{base}/console/signin")).header("X-Forwarded-Proto", "https").send().unwrap();
    assert!(res.headers()["set-cookie"].to_str().unwrap().contains("Secure"));

    // a signed-in post without the CSRF token is refused and changes nothing
    let res = client
        .post(format!("{base}/console/sync"))
        .header("Cookie", &session)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("enabled", "true")]))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = client
        .post(format!("{base}/console/sync"))
        .header("Cookie", &session)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("enabled", "true"), ("csrf", "not-the-token")]))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["enabled"], json!(false));

    // the session's own token works; unknown form fields are refused, not ignored
    let page =
        client.get(format!("{base}/console/")).header("Cookie", &session).send().unwrap().text().unwrap();
    let token = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let res = client
        .post(format!("{base}/console/sync"))
        .header("Cookie", &session)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("enabled", "true"), ("csrf", token.as_str()), ("colour", "red")]))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = client
        .post(format!("{base}/console/sync"))
        .header("Cookie", &session)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form(&[("enabled", "true"), ("csrf", token.as_str())]))
        .send()
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["enabled"], json!(true));

    // htmx gets its part of the page, and is told to load the sign-in page when signed out
    let res = client
        .get(format!("{base}/console/status"))
        .header("Cookie", &session)
        .header("HX-Request", "true")
        .send()
        .unwrap();
    let part = res.text().unwrap();
    assert!(part.trim_start().starts_with("<div id=\"sync-status\"") && !part.contains("<html"), "{part}");
    let res = client.get(format!("{base}/console/status")).header("HX-Request", "true").send().unwrap();
    assert_eq!(res.headers()["hx-redirect"], "/console/signin?next=/console/status");

    // assets come from the binary
    let res = client.get(format!("{base}/console/assets/htmx-2.0.11.min.js")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().unwrap().contains("htmx"));
}

/// `n` active users, members of a new directory group `name`; their ids.
fn members_of(app: &TestApp, name: &str, n: usize) -> (String, Vec<String>) {
    let gid = id(&app.create_group(name));
    let users: Vec<String> = (1..=n)
        .map(|i| {
            let login = format!("{}{i}@example.com", name.to_lowercase());
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": login, "active": true, "title": "Host",
                "name": {"givenName": format!("Host{i}"), "familyName": "Example"},
                "emails": [{"value": login, "primary": true}]});
            id(&app.create_user(&body))
        })
        .collect();
    app.add_members(&gid, &users.iter().map(String::as_str).collect::<Vec<_>>());
    (gid, users)
}

fn rule_ids(app: &TestApp) -> Vec<String> {
    let rules = app.admin_ok(Method::GET, "/rules", None, StatusCode::OK)["Resources"].clone();
    rules.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
}

/// The text of an element found by CSS, or `None` when there is none.
async fn text_of(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

/// A mass revocation held and reverted, then held and released from the home page; the broken rule it
/// leaves; a user's explanation; the pages of user groups, settings and email templates and custom
/// attributes; the filter checked as it is typed; the history in words, filtered by who did it; and the
/// last use of tokens.
#[test]
fn holds_broken_rules_users_objects_and_the_history_in_chromium() {
    let Some(browser) =
        browser(true, "console::holds_broken_rules_users_objects_and_the_history_in_chromium")
    else {
        return;
    };
    let (app, _clock, _dir) = console_app();
    put_product(&app, "meeting", "Meeting", 100);
    put_product(&app, "webinar", "Webinar", 10);
    let settings = json!({"massRevocation": {"percent": 10, "minUsers": 2}});
    app.admin_ok(Method::PATCH, "/settings", Some(&settings), StatusCode::OK);
    let (hosts, users) = members_of(&app, "Hosts", 5);
    let staff = id(&app.create_group("Staff"));
    app.add_members(&staff, &users.iter().map(String::as_str).collect::<Vec<_>>());
    let hosts_rule = json!({"group": hosts, "products": ["meeting", "webinar"]});
    app.admin_ok(Method::POST, "/rules", Some(&hosts_rule), StatusCode::CREATED);
    let staff_rule = json!({"group": staff, "products": ["meeting"]});
    app.admin_ok(Method::POST, "/rules", Some(&staff_rule), StatusCode::CREATED);
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();
    let order = rule_ids(&app);
    // a reorder would take Webinar from all five: held
    let reversed = json!({"order": [order[1], order[0]]});
    app.admin_ok(Method::PUT, "/rules/order", Some(&reversed), StatusCode::OK);
    app.settle();
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["state"], json!("held"));
    let base = format!("http://{}", app.addr);

    browser.run(async |c| {
        sign_in(c, &base, ADMIN_TOKEN).await;
        wait_for_text(
            c,
            "User Sync is holding back the revocations of 5 users, caused by a reorder of the rules",
            false,
        )
        .await;
        wait_for_text(c, "hosts1@example.com would lose Webinar", false).await;
        accessible(c, "User Sync with a hold").await;
        screenshot(c, "hold").await;
        // the hold's own page lists every held user; Revert there as on the home page
        c.goto(&format!("{base}/console/hold")).await.unwrap();
        assert_eq!(h1_becomes(c, "Held revocations").await, "Held revocations");
        wait_for_text(c, "hosts5@example.com would lose Webinar", false).await;
        accessible(c, "Held revocations").await;
        by_role(c, "button", "Revert").await.click().await.unwrap();
        by_role(c, "heading", "User Sync").await;
        wait_until(c, "document.getElementById('banner-hold') === null", "the hold is gone").await;
    });
    assert_eq!(rule_ids(&app), order, "Revert put the rules back");
    app.settle();
    assert_eq!(app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK)["used"], json!(5));

    // the directory deletes Hosts: held again, from the directory (nothing to revert); Release applies it
    let res = app.delete(&format!("/Groups/{hosts}"));
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.settle();
    browser.run(async |c| {
        c.goto(&format!("{base}/console/")).await.unwrap();
        wait_for_text(c, "caused by the deletion of a directory group", false).await;
        let revert = c.find(Locator::XPath("//button[normalize-space(.)='Revert']")).await;
        assert!(revert.is_err(), "a directory change cannot be reverted");
        by_role(c, "button", "Release").await.click().await.unwrap();
        wait_until(c, "document.getElementById('banner-hold') === null", "released").await;
        // the rule of the deleted group is broken: a banner links to it to be pointed elsewhere
        wait_for_text(
            c,
            "Rule 1 names the directory group Hosts, which was deleted: it matches nobody",
            false,
        )
        .await;
        accessible(c, "User Sync with a broken rule").await;
    });
    // a group named as the deleted one was appears: the banner offers it, and the form comes pointed at it
    let new_hosts = id(&app.create_group("Hosts"));
    browser.run(async |c| {
        c.goto(&format!("{base}/console/")).await.unwrap();
        wait_for_text(c, "A group named Hosts exists now.", false).await;
        by_role(c, "link", "Point rule 1 at the new Hosts").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rule 1").await, "Rule 1");
        let chosen = labelled(c, "Directory group").await.prop("value").await.unwrap();
        assert_eq!(chosen.as_deref(), Some(new_hosts.as_str()), "the suggested group is chosen, not saved");
        by_role(c, "link", "User Sync").await.click().await.unwrap();
        by_role(c, "link", "Re-point rule 1").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Rule 1").await, "Rule 1");

        // the filter is checked as it is typed, by the check saving makes
        let filter = labelled(c, "Filter (optional)").await;
        filter.send_keys("titel eq \"Host\"").await.unwrap();
        // (htmx settles the swapped element's attributes a moment after its text: wait for both)
        wait_until(
            c,
            "document.getElementById('filter-check').textContent.includes('titel') \
             && document.getElementById('filter-check').classList.contains('field-error')",
            "the misspelt attribute is named",
        )
        .await;
        assert!(
            text_of(c, "#filter-check.field-error").await.is_some(),
            "shown as an error: {:?}",
            text_of(c, "#filter-check").await
        );
        filter.clear().await.unwrap();
        filter.send_keys("title eq \"Host\"").await.unwrap();
        wait_until(
            c,
            "document.getElementById('filter-check').textContent === 'The filter is valid.'",
            "a valid filter",
        )
        .await;
        accessible(c, "the rule form with a checked filter").await;
        // the welcome email's Preview opens in a new tab; the unsaved rule stays in this one
        let this = c.window().await.unwrap();
        by_role(c, "button", "Preview the welcome email").await.click().await.unwrap();
        let deadline = Instant::now() + WAIT;
        let other = loop {
            let windows = c.windows().await.unwrap();
            if let Some(w) = windows.into_iter().find(|w| *w != this) {
                break w;
            }
            assert!(Instant::now() < deadline, "no new tab");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        c.switch_to_window(other).await.unwrap();
        assert_eq!(
            h1_becomes(c, "Preview of Default welcome email").await,
            "Preview of Default welcome email"
        );
        wait_for_text(c, "Email to jane.doe@example.com", false).await;
        c.close_window().await.unwrap();
        c.switch_to_window(this).await.unwrap();
        assert_eq!(
            labelled(c, "Filter (optional)").await.prop("value").await.unwrap().as_deref(),
            Some("title eq \"Host\""),
            "the unsaved rule is still there"
        );
    });
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["state"], json!("running"));
    app.settle();
    assert_eq!(app.admin_ok(Method::GET, "/products/webinar", None, StatusCode::OK)["used"], json!(0));

    browser.run(async |c| {
        // Users: the search of the admin API, and a user's explanation rule by rule
        by_role(c, "link", "Users").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "Users").await, "Users");
        wait_for_text(c, "5 users, page 1 of 1", false).await;
        accessible(c, "Users").await;
        labelled(c, "Search users").await.send_keys("hosts3").await.unwrap();
        by_role(c, "button", "Search").await.click().await.unwrap();
        wait_for_text(c, "1 user matching \"hosts3\"", false).await;
        by_role(c, "link", "hosts3@example.com").await.click().await.unwrap();
        assert_eq!(h1_becomes(c, "hosts3@example.com").await, "hosts3@example.com");
        wait_for_text(c, "Rule 1 names a directory group that was deleted", false).await;
        wait_for_text(c, "Rule 2 (Staff) decided: its products, role and settings are the user's.", false)
            .await;
        wait_for_text(c, "Meeting", false).await;
        accessible(c, "a user's explanation").await;
        screenshot(c, "user").await;

        // User groups
        by_role(c, "link", "User groups").await.click().await.unwrap();
        by_role(c, "link", "Create user group").await.click().await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "Must not be empty.", false).await;
        accessible(c, "the user group form with an error").await;
        labelled(c, "Name").await.send_keys("Support team").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "The user group Support team was saved.", false).await;
        accessible(c, "User groups").await;

        // Settings templates: the settings are JSON, checked next to the field
        by_role(c, "link", "Settings templates").await.click().await.unwrap();
        wait_for_text(c, "Default settings", false).await;
        by_role(c, "link", "Create settings template").await.click().await.unwrap();
        labelled(c, "Name").await.send_keys("Recording on").await.unwrap();
        let settings = labelled(c, "Settings").await;
        settings.clear().await.unwrap();
        settings.send_keys("{\"recording\": ").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "Is not JSON", false).await;
        assert_eq!(labelled(c, "Name").await.prop("value").await.unwrap().as_deref(), Some("Recording on"));
        accessible(c, "the settings template form with an error").await;
        let settings = labelled(c, "Settings").await;
        settings.clear().await.unwrap();
        settings.send_keys("{\"recording\": \"cloud\"}").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "The settings template Recording on was saved.", false).await;
        accessible(c, "Settings templates").await;

        // Email templates: Create New Template, its placeholders checked; Preview; Edit; Delete
        by_role(c, "link", "Email templates").await.click().await.unwrap();
        by_role(c, "link", "Create New Template").await.click().await.unwrap();
        labelled(c, "Name").await.send_keys("Willkommen").await.unwrap();
        labelled(c, "Subject (Deutsch)").await.send_keys("Hallo {{frstName}}").await.unwrap();
        labelled(c, "Body (Deutsch)").await.send_keys("Willkommen, {{displayName}}.").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "Unknown placeholder {{frstName}}", false).await;
        assert!(c.find(Locator::Id("subject-de_DE-error")).await.is_ok(), "next to the subject");
        accessible(c, "the email template form with an error").await;
        let subject = labelled(c, "Subject (Deutsch)").await;
        subject.clear().await.unwrap();
        subject.send_keys("Hallo {{givenName}}").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "The email template Willkommen was saved.", false).await;
        accessible(c, "Email templates").await;
        by_role(c, "link", "Preview Willkommen").await.click().await.unwrap();
        choose(c, "Language", "Deutsch").await;
        labelled(c, "User (login)").await.send_keys("hosts2@example.com").await.unwrap();
        by_role(c, "button", "Preview").await.click().await.unwrap();
        wait_for_text(c, "Hallo Host2", false).await;
        assert_eq!(text_of(c, "#preview-subject").await.as_deref(), Some("Hallo Host2"));
        accessible(c, "an email template's preview").await;
        by_role(c, "link", "Back to Email templates").await.click().await.unwrap();
        by_role(c, "link", "Edit Willkommen").await.click().await.unwrap();
        assert_eq!(
            h1_becomes(c, "Edit the email template Willkommen").await,
            "Edit the email template Willkommen"
        );
        by_role(c, "link", "Delete").await.click().await.unwrap();
        assert_eq!(
            h1_becomes(c, "Delete the email template Willkommen?").await,
            "Delete the email template Willkommen?"
        );
        accessible(c, "the delete confirmation of a template").await;
        by_role(c, "button", "Delete").await.click().await.unwrap();
        wait_for_text(c, "The email template Willkommen was deleted.", false).await;

        // Custom attributes: a standard name is refused next to the form
        by_role(c, "link", "Custom attributes").await.click().await.unwrap();
        labelled(c, "Name").await.send_keys("badgeColour").await.unwrap();
        by_role(c, "button", "Add attribute").await.click().await.unwrap();
        wait_for_text(c, "The custom attribute badgeColour was added.", false).await;
        labelled(c, "Name").await.send_keys("userName").await.unwrap();
        by_role(c, "button", "Add attribute").await.click().await.unwrap();
        wait_for_text(c, "'userName' is a standard User attribute.", false).await;
        accessible(c, "Custom attributes").await;
        by_role(c, "button", "Remove badgeColour").await.click().await.unwrap();
        wait_for_text(c, "The custom attribute badgeColour was removed.", false).await;
    });
    let groups = app.admin_ok(Method::GET, "/user-groups", None, StatusCode::OK);
    assert_eq!(groups["Resources"][0]["name"], json!("Support team"));
    let templates = app.admin_ok(Method::GET, "/settings-templates", None, StatusCode::OK);
    assert_eq!(templates["Resources"][1]["settings"], json!({"recording": "cloud"}));
    let emails = app.admin_ok(Method::GET, "/email-templates", None, StatusCode::OK);
    assert_eq!(emails["totalResults"], json!(1), "only the built-in one is left: {emails}");
    assert_eq!(app.admin_ok(Method::GET, "/custom-attributes", None, StatusCode::OK), json!([]));

    browser.run(async |c| {
        // the history in words, filtered by who did it
        by_role(c, "link", "Administrative Activity History").await.click().await.unwrap();
        wait_for_text(c, "User group Support team created by admin token 'environment'", false).await;
        wait_for_text(c, "Custom attribute badgeColour removed by admin token 'environment'", false).await;
        wait_for_text(c, "held (caused by the deletion of a directory group) by User Sync", false).await;
        labelled(c, "Type").await.send_keys("rules.reordered").await.unwrap();
        by_role(c, "button", "Filter").await.click().await.unwrap();
        wait_for_text(c, "Rule 2 moved to 1, rule 1 moved to 2 by admin token 'environment'", false).await;
        labelled(c, "Type").await.clear().await.unwrap();
        labelled(c, "Who").await.send_keys("usersync").await.unwrap();
        by_role(c, "button", "Filter").await.click().await.unwrap();
        wait_for_text(c, "by User Sync", false).await;
        for who in c.find_all(Locator::Css("tbody tr td:nth-child(2)")).await.unwrap() {
            assert_eq!(who.text().await.unwrap(), "User Sync");
        }
        accessible(c, "the history filtered by who").await;
        // the admin token's last use
        by_role(c, "link", "Tokens").await.click().await.unwrap();
        let used = c
            .find(Locator::XPath(
                "//tr[th[normalize-space(.)='environment'] and td[1][starts-with(normalize-space(.),'Admin')]]/td[3]",
            ))
            .await
            .unwrap();
        let used = used.text().await.unwrap();
        assert!(used != "Never" && used.starts_with("20"), "last used: {used}");
    });
}

/// Without JavaScript: the hold's Release, the Users search and an object form are plain forms.
#[test]
fn without_javascript_holds_users_and_objects_work_as_plain_forms() {
    let Some(browser) =
        browser(false, "console::without_javascript_holds_users_and_objects_work_as_plain_forms")
    else {
        return;
    };
    let (app, _clock, _dir) = console_app();
    put_product(&app, "meeting", "Meeting", 100);
    let settings = json!({"massRevocation": {"percent": 10, "minUsers": 2}});
    app.admin_ok(Method::PATCH, "/settings", Some(&settings), StatusCode::OK);
    let (hosts, _) = members_of(&app, "Hosts", 3);
    let rule = json!({"group": hosts, "products": ["meeting"]});
    app.admin_ok(Method::POST, "/rules", Some(&rule), StatusCode::CREATED);
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();
    let empty = json!({"Operations": [{"op": "replace", "path": "members", "value": []}]});
    assert_eq!(app.patch(&format!("/Groups/{hosts}"), &empty).status(), StatusCode::NO_CONTENT);
    app.settle();
    let base = format!("http://{}", app.addr);
    browser.run(async |c| {
        sign_in(c, &base, ADMIN_TOKEN).await;
        wait_for_text(c, "holding back the revocations of 3 users", false).await;
        by_role(c, "button", "Release").await.click().await.unwrap();
        wait_for_text(c, "Sync is running", false).await;
        assert!(!page_text(c).await.contains("holding back"), "released");
        by_role(c, "link", "Users").await.click().await.unwrap();
        choose(c, "State", "No products").await;
        by_role(c, "button", "Search").await.click().await.unwrap();
        wait_for_text(c, "3 users, page 1 of 1", false).await;
        choose(c, "State", "Synced").await;
        by_role(c, "button", "Search").await.click().await.unwrap();
        wait_for_text(c, "No user matches this search.", false).await;
        choose(c, "State", "Any state").await;
        labelled(c, "Search users").await.send_keys("hosts2").await.unwrap();
        by_role(c, "button", "Search").await.click().await.unwrap();
        wait_for_text(c, "1 user matching \"hosts2\"", false).await;
        by_role(c, "link", "hosts2@example.com").await.click().await.unwrap();
        wait_for_text(c, "Rule 1 (Hosts) did not match: the user is not a member of Hosts.", false).await;
        by_role(c, "link", "User groups").await.click().await.unwrap();
        by_role(c, "link", "Create user group").await.click().await.unwrap();
        labelled(c, "Name").await.send_keys("Plain team").await.unwrap();
        by_role(c, "button", "Save").await.click().await.unwrap();
        wait_for_text(c, "The user group Plain team was saved.", false).await;
    });
    assert_eq!(app.admin_ok(Method::GET, "/sync", None, StatusCode::OK)["state"], json!("running"));
    assert_eq!(app.admin_ok(Method::GET, "/products/meeting", None, StatusCode::OK)["used"], json!(0));
    let groups = app.admin_ok(Method::GET, "/user-groups", None, StatusCode::OK);
    assert_eq!(groups["Resources"][0]["id"], json!("plain-team"));
}

/// A signed-in console session over plain HTTP: the client (no redirects followed) and the session cookie.
pub(crate) fn http_session(app: &TestApp) -> (reqwest::blocking::Client, String) {
    let client =
        reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = crate::helpers::console_sign_in(&client, app, ADMIN_TOKEN);
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("usersync_console="))
        .unwrap();
    (client, session.split(';').next().unwrap().to_string())
}

/// Details and Users are paged by the store's paged queries (the second page holds the rest, the banner
/// counts every failing user), and so are the held users.
#[test]
fn details_users_and_held_users_come_a_page_at_a_time() {
    let (app, _clock, _dir) = console_app();
    put_product(&app, "webinar", "Webinar", 3);
    let (gid, _) = members_of(&app, "Crowd", 63);
    let rule = json!({"group": gid, "products": ["webinar"]});
    app.admin_ok(Method::POST, "/rules", Some(&rule), StatusCode::CREATED);
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();
    let (client, session) = http_session(&app);
    let get = |path: &str| {
        let res = client.get(format!("http://{}{path}", app.addr)).header("Cookie", &session).send().unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.text().unwrap()
    };
    let home = get("/console/");
    assert!(home.contains("60 users could not be synced: out of licenses for Webinar"), "{home}");
    let rows = |page: &str| page.matches("name=\"users\" value=").count();
    let first = get("/console/failures/outOfLicenses");
    assert!(first.contains("page 1 of 2") && first.contains("60 users could not be synced"), "{first}");
    assert_eq!(rows(&first), 50);
    let second = get("/console/failures/outOfLicenses?page=2");
    assert!(second.contains("page 2 of 2"), "{second}");
    assert_eq!(rows(&second), 10);
    let users = get("/console/users?page=2");
    assert!(users.contains("63 users, page 2 of 2"), "{users}");
    assert_eq!(users.matches("<a href=\"/console/users/").count(), 13);
    let failed = get("/console/users?state=failed&search=crowd");
    assert!(failed.contains("60 users matching \"crowd\", page 1 of 2"), "{failed}");

    // 60 held revocations: the banner names ten, the hold's page shows them all, 50 a page
    put_product(&app, "meeting", "Meeting", 1000);
    let (team, _) = members_of(&app, "Team", 60);
    let rule = json!({"group": team, "products": ["meeting"]});
    app.admin_ok(Method::POST, "/rules", Some(&rule), StatusCode::CREATED);
    app.settle();
    let empty = json!({"Operations": [{"op": "replace", "path": "members", "value": []}]});
    assert_eq!(app.patch(&format!("/Groups/{team}"), &empty).status(), StatusCode::NO_CONTENT);
    app.settle();
    let home = get("/console/");
    assert!(home.contains("holding back the revocations of 60 users"), "{home}");
    assert_eq!(home.matches("would lose Meeting").count(), 10);
    assert!(home.contains("and 50 more users: <a href=\"/console/hold\">see every held user</a>"), "{home}");
    let first = get("/console/hold");
    assert_eq!(first.matches("would lose Meeting").count(), 50);
    let second = get("/console/hold?page=2");
    assert!(second.contains("Page 2 of 2"), "{second}");
    assert_eq!(second.matches("would lose Meeting").count(), 10);
}

/// Answers 200 to every request on `listener`, each connection on a thread of its own (keep-alive).
fn answer_every_request(listener: TcpListener) {
    use std::io::{BufRead, BufReader, Read, Write};
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line.trim_end().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.trim().eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err()
                        || writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}

/// Webhooks in the console: added through the form (a bad URL named next to its field first), watched in
/// words as its receiver is down and the webhook pauses, resumed once the receiver is back and then
/// delivering, and deleted after a confirmation.
#[test]
fn webhooks_are_added_watched_resumed_and_deleted_in_chromium() {
    let Some(browser) = browser(true, "console::webhooks_are_added_watched_resumed_and_deleted_in_chromium")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = console_settings(&dir);
    settings.webhooks = usersync::delivery::webhooks::WebhookConfig {
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        pause_after: 2,
        timeout: Duration::from_secs(2),
    };
    let app = crate::helpers::spawn_with(settings);
    // nothing listens on the receiver's port until the test brings it up
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://{}", app.addr);
    browser.run(async |c| {
        sign_in(c, &base, ADMIN_TOKEN).await;
        by_role(c, "link", "Webhooks").await.click().await.unwrap();
        by_role(c, "heading", "Webhooks").await;
        wait_for_text(c, "There are no webhooks yet.", false).await;
        labelled(c, "ID").await.send_keys("meeting-service").await.unwrap();
        labelled(c, "URL").await.send_keys("ftp://meeting.example/hook").await.unwrap();
        by_role(c, "button", "Add webhook").await.click().await.unwrap();
        wait_for_text(c, "Must be an http or https URL.", false).await;
        let url = labelled(c, "URL").await;
        url.clear().await.unwrap();
        url.send_keys(&format!("http://127.0.0.1:{port}/hook")).await.unwrap();
        by_role(c, "button", "Add webhook").await.click().await.unwrap();
        wait_for_text(c, "The webhook meeting-service was saved.", false).await;
        accessible(c, "a webhook").await;
    });
    put_product(&app, "meeting", "Meeting", 100);
    let (hosts, _) = members_of(&app, "Hosts", 3);
    app.admin_ok(
        Method::POST,
        "/rules",
        Some(&json!({"group": hosts, "products": ["meeting"]})),
        StatusCode::CREATED,
    );
    app.admin_ok(Method::PUT, "/sync", Some(&json!({"enabled": true})), StatusCode::OK);
    app.settle();
    browser.run(async |c| {
        wait_for_text(c, "after 2 failed attempts; 3 changes are waiting", true).await;
        by_role(c, "link", "User Sync").await.click().await.unwrap();
        let banner = format!("The webhook meeting-service is paused after 2 failed attempts: 3 changes are waiting to reach http://127.0.0.1:{port}/hook.");
        wait_for_text(c, &banner, false).await;
        by_role(c, "link", "Open the webhook meeting-service").await.click().await.unwrap();
        answer_every_request(TcpListener::bind(("127.0.0.1", port)).unwrap());
        by_role(c, "button", "Resume").await.click().await.unwrap();
        wait_for_text(c, "The webhook meeting-service was resumed", false).await;
        wait_for_text(c, "Delivering: every change was delivered.", true).await;
        screenshot(c, "webhook").await;
        by_role(c, "link", "All webhooks").await.click().await.unwrap();
        wait_for_text(c, "Delivering: every change was delivered.", false).await;
        accessible(c, "the webhooks").await;
        by_role(c, "link", "meeting-service").await.click().await.unwrap();
        by_role(c, "link", "Delete the webhook meeting-service").await.click().await.unwrap();
        by_role(c, "button", "Delete webhook").await.click().await.unwrap();
        wait_for_text(c, "The webhook meeting-service was deleted.", false).await;
    });
    let hooks = app.admin_ok(Method::GET, "/webhooks", None, StatusCode::OK);
    assert_eq!(hooks["totalResults"], json!(0), "{hooks}");
    let types: Vec<Value> = app.admin_ok(Method::GET, "/activity?type=webhook.updated", None, StatusCode::OK)
        ["Resources"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!types.is_empty(), "the console's changes are in the history");
}
