//! The admin page in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, installed by scripts/install-test-deps.sh) driven
//! through WebDriver. It logs in, connects the emulator by approving on its
//! consent page, watches the setup finish, posts webhooks with the token it
//! was shown, opens a synced record's link, retries a skipped request after
//! adding its Account (the page's counts follow on their own), retries a dead
//! letter, opens a request's history, finds a request, and rolls the webhook
//! token with a grace period (both tokens work until it is revoked). Then it
//! walks every page at 1280 and at 390 pixels wide (a phone, emulated): a
//! screenshot of each, nothing scrolling sideways on the phone, and axe-core
//! (pinned in tests/axe) finding no serious or critical violation.
//! Screenshots go to `target/browser-artifacts/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, site, Options, ADMIN_PASSWORD};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> (Driver, String) {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(bin).exists(),
            "{bin} is missing: install Debian's chromium and chromium-driver (scripts/install-test-deps.sh does)"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = reqwest::get(format!("{url}/status"))
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(r) = ready {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if v["value"]["ready"] == true {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (driver, url)
}

/// A Chromium session; `phone`: a 390 px wide screen, emulated.
async fn browser(driver_url: &str, profile: &std::path::Path, phone: bool) -> Client {
    let mut options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1280,900",
            format!("--user-data-dir={}", profile.display()),
        ]
    });
    if phone {
        options["mobileEmulation"] = json!({
            "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 1.0, "touch": true}
        });
    }
    let caps = json!({"browserName": "chrome", "goog:chromeOptions": options});
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a Chromium session")
}

/// Saves screenshots of each step.
struct Shots {
    dir: PathBuf,
    n: u32,
}

impl Shots {
    fn new() -> Shots {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Shots { dir, n: 0 }
    }

    async fn take(&mut self, c: &Client, name: &str) {
        self.n += 1;
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(self.dir.join(format!("{:02}-{name}.png", self.n)), png).unwrap();
    }
}

async fn css(c: &Client, sel: &str) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(sel))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = c.current_url().await.ok();
            let page = c.source().await.unwrap_or_default();
            panic!("no {sel} on {url:?}: {e}\n{page}")
        }
    }
}

async fn text(c: &Client, sel: &str) -> String {
    css(c, sel).await.text().await.unwrap()
}

/// Waits until `sel`'s text is `want` (the page changes it on its own).
async fn until_text(c: &Client, sel: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = text(c, sel).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sel} says {got:?}, never {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// axe-core's source (tests/axe, pinned; scripts/install-test-deps.sh installs it).
fn axe_source() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}: run scripts/install-test-deps.sh", path.display()))
}

/// Opens `url` and audits it (see [`audit`]).
async fn look(c: &Client, shots: &mut Shots, axe: &str, name: &str, url: &str) {
    c.goto(url).await.unwrap();
    audit(c, shots, axe, name).await;
}

/// Screenshots the page shown, checks that nothing scrolls sideways, and
/// runs axe-core on it: no serious or critical violation.
async fn audit(c: &Client, shots: &mut Shots, axe: &str, name: &str) {
    css(c, "main").await;
    shots.take(c, name).await;
    let widths = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (scroll, inner) = (widths[0].as_i64().unwrap(), widths[1].as_i64().unwrap());
    assert!(
        scroll <= inner,
        "{name} scrolls sideways at {inner} px: {scroll} px wide"
    );
    c.execute(axe, vec![]).await.unwrap();
    let found = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, {resultTypes: ["violations"]}).then(
                 r => done(r.violations
                   .filter(v => v.impact === "serious" || v.impact === "critical")
                   .map(v => v.id + " (" + v.impact + "): " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", "))),
                 e => done(["axe failed: " + e]));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(found, json!([]), "axe-core on {name} ({inner} px)");
}

/// Logs in on the login page.
async fn log_in(c: &Client, base: &str) {
    c.goto(&format!("{base}/integrations")).await.unwrap();
    css(c, "#password")
        .await
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    css(c, "#login").await.click().await.unwrap();
    css(c, "#setup").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connects_and_fixes_things_in_a_real_browser() {
    let s = site(Options::default()).await;
    let (_driver, driver_url) = start_driver().await;
    let profile = s.dir.join("chromium-profile");
    let c = browser(&driver_url, &profile, false).await;
    let mut shots = Shots::new();
    let base = s.app.url();

    // Log in (any page sends a stranger to the login).
    c.goto(&format!("{base}/integrations")).await.unwrap();
    css(&c, "#password")
        .await
        .send_keys(ADMIN_PASSWORD)
        .await
        .unwrap();
    shots.take(&c, "login").await;
    css(&c, "#login").await.click().await.unwrap();
    css(&c, "#setup").await;
    shots.take(&c, "integrations-empty").await;

    // Set up: the emulator, approved on its consent page.
    css(&c, "#setup").await.click().await.unwrap();
    let name = css(&c, "#name").await;
    name.clear().await.unwrap();
    name.send_keys("acme").await.unwrap();
    css(&c, "#place-emulator").await.click().await.unwrap();
    shots.take(&c, "connect").await;
    css(&c, "#connect").await.click().await.unwrap();
    let user = css(&c, "#username").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&s.emu.base_url));
    user.clear().await.unwrap();
    user.send_keys("admin@example.com").await.unwrap();
    css(&c, "#password")
        .await
        .send_keys("emulator")
        .await
        .unwrap();
    shots.take(&c, "salesforce-consent").await;
    css(&c, "#approve").await.click().await.unwrap();

    // The setup's progress, then the webhook URL and token to paste into Thena.
    css(&c, "#steps").await;
    shots.take(&c, "setup-progress").await;
    css(&c, "#setup-done").await;
    let axe = axe_source();
    audit(&c, &mut shots, &axe, "setup-done").await;
    let setup_url = c.current_url().await.unwrap().to_string();
    let token = text(&c, "#webhook-token").await;
    let webhook_url = text(&c, "#webhook-url").await;
    assert_eq!(webhook_url, format!("{base}/webhooks/thena/acme"));
    assert!(token.starts_with("tsf_"));
    css(&c, "button.copy[data-copy=webhook-token]").await;

    // Thena sends three requests: one resolves, one matches no Account, one
    // Salesforce refuses for good (its Status is restricted in this org).
    support::restrict_status(&s.sf, true).await;
    for (id, email, team, status) in [
        ("R-OK", "harsh@acme.io", "Acme Corp", "OPEN"),
        ("R-SKIP", "zed@newco.example", "Newco", "OPEN"),
        ("R-DEAD", "harsh@acme.io", "Acme Corp", "IN_PROGRESS"),
    ] {
        let body = support::webhook(id, "Zed Doe", email, team, status);
        assert_eq!(support::post(&base, &token, &body).await, 200, "{id}");
    }
    support::wait_for(&s.store, |c| {
        (c.pending, c.synced, c.skipped, c.failed) == (0, 1, 1, 1)
    })
    .await;

    // The connection page: the synced request, with a link that opens its record.
    css(&c, "#open-connection").await.click().await.unwrap();
    assert_eq!(text(&c, "#synced").await, "1");
    // Salesforce refused a record within the hour: degraded, with why.
    assert_eq!(text(&c, "#state").await, "degraded");
    let why = text(&c, ".page-head .alert").await;
    assert!(
        why.contains("1 record failed in the last hour")
            && why.contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        "{why}"
    );
    shots.take(&c, "connection-activity").await;
    let mut link = None;
    for row in c
        .find_all(Locator::Css("#activity tbody tr"))
        .await
        .unwrap()
    {
        if row.text().await.unwrap().contains("R-OK") {
            if let Ok(a) = row.find(Locator::Css("a.record-link")).await {
                link = a.attr("href").await.unwrap();
            }
        }
    }
    let link = link.expect("R-OK's row links to its record");
    c.goto(&link).await.unwrap();
    assert_eq!(text(&c, "#field-RequestId__c").await, "R-OK");
    shots.take(&c, "salesforce-record").await;
    c.back().await.unwrap();

    // The skipped request says why; its Account is added in Salesforce, then Retry.
    css(&c, "#tab-skipped").await.click().await.unwrap();
    let row = text(&c, "#skipped-list").await;
    assert!(
        row.contains("R-SKIP") && row.contains("no Account named 'Newco'"),
        "{row}"
    );
    shots.take(&c, "skipped").await;
    s.sf.create("Account", &json!({"Name": "Newco"}))
        .await
        .unwrap();
    css(&c, "button.retry-skipped[data-request=R-SKIP]")
        .await
        .click()
        .await
        .unwrap();
    assert!(text(&c, "#notice")
        .await
        .contains("1 skipped request put back"));
    // The retried row has left the list and counts once; the page follows
    // the sync on its own, without a reload.
    assert!(c
        .find_all(Locator::Css("button.retry-skipped[data-request=R-SKIP]"))
        .await
        .unwrap()
        .is_empty());
    until_text(&c, "#tab-skipped", "Skipped (0)").await;
    until_text(&c, "#synced", "2").await;
    shots.take(&c, "skipped-retried").await;
    support::wait_for(&s.store, |c| {
        (c.pending, c.synced, c.skipped, c.failed) == (0, 2, 0, 1)
    })
    .await;

    // The dead letter shows Salesforce's error; the picklist is fixed, then Retry.
    css(&c, "#tab-failed").await.click().await.unwrap();
    let row = text(&c, "#dead-list").await;
    assert!(
        row.contains("R-DEAD") && row.contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        "{row}"
    );
    shots.take(&c, "dead-letters").await;
    support::restrict_status(&s.sf, false).await;
    css(&c, "button.retry-dead[data-request=R-DEAD]")
        .await
        .click()
        .await
        .unwrap();
    assert!(text(&c, "#notice").await.contains("1 dead letter put back"));
    support::wait_for(&s.store, |c| {
        (c.pending, c.synced, c.skipped, c.failed) == (0, 3, 0, 0)
    })
    .await;

    // Everything synced, each linked to its record; the doctor passes.
    css(&c, "#tab-activity").await.click().await.unwrap();
    assert_eq!(text(&c, "#synced").await, "3");
    assert_eq!(text(&c, "#failed").await, "0");
    let mut records = std::collections::BTreeSet::new();
    for a in c.find_all(Locator::Css("a.record-link")).await.unwrap() {
        records.insert(a.attr("href").await.unwrap().unwrap());
    }
    assert_eq!(records.len(), 3, "each request links to its own record");
    shots.take(&c, "connection-all-synced").await;

    // A request's own page: each delivery and each step of its sync.
    css(&c, "#activity a.req-id[href$='R%2DDEAD']")
        .await
        .click()
        .await
        .unwrap();
    let deliveries = text(&c, "#request-deliveries").await;
    assert!(
        deliveries.contains("request update (IN_PROGRESS)")
            && deliveries.contains("queued for Salesforce"),
        "{deliveries}"
    );
    let history = text(&c, "#request-history").await;
    assert!(
        history.contains("failed") && history.contains("synced"),
        "{history}"
    );
    shots.take(&c, "request-history").await;
    let history_url = c.current_url().await.unwrap().to_string();
    c.back().await.unwrap();
    // Search by the requestor's email.
    css(&c, "#search-q")
        .await
        .send_keys("harsh@acme.io")
        .await
        .unwrap();
    css(&c, "#search-go").await.click().await.unwrap();
    let found = text(&c, "#search-results").await;
    assert!(
        found.contains("R-OK") && found.contains("R-DEAD") && !found.contains("R-SKIP"),
        "{found}"
    );
    let search_url = c.current_url().await.unwrap().to_string();
    c.back().await.unwrap();
    assert_ne!(text(&c, "#state").await, "degraded");
    css(&c, "#tab-setup").await.click().await.unwrap();
    css(&c, "#doctor-ok").await;
    let first = text(&c, "#checked-at").await;
    assert!(first.starts_with("checked at "), "{first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    css(&c, "#check-now").await.click().await.unwrap();
    assert!(text(&c, "#notice").await.contains("every check passes"));
    assert_ne!(text(&c, "#checked-at").await, first, "checked again");
    shots.take(&c, "doctor").await;

    // A new webhook token, with the old one kept for an hour: both work
    // until the old one is revoked.
    css(&c, "#new-token").await.click().await.unwrap();
    let roll_url = c.current_url().await.unwrap().to_string();
    css(&c, "#grace option[value='1']")
        .await
        .click()
        .await
        .unwrap();
    shots.take(&c, "token-roll").await;
    css(&c, "#confirm-new-token").await.click().await.unwrap();
    assert!(text(&c, "#old-token").await.contains("keeps working until"));
    let new_token = text(&c, "#webhook-token").await;
    assert!(new_token.starts_with("tsf_") && new_token != token);
    audit(&c, &mut shots, &axe, "token-new").await;
    let body = support::webhook("R-OK", "Zed Doe", "harsh@acme.io", "Acme Corp", "OPEN");
    assert_eq!(
        support::post(&base, &token, &body).await,
        200,
        "the old token, in its grace"
    );
    assert_eq!(
        support::post(&base, &new_token, &body).await,
        200,
        "the new token"
    );
    c.goto(&format!("{base}/connections/acme?tab=setup"))
        .await
        .unwrap();
    assert!(text(&c, "#previous-token")
        .await
        .contains("also works until"));
    css(&c, "#revoke-old-token").await.click().await.unwrap();
    assert!(text(&c, "#notice").await.contains("no longer works"));
    assert_eq!(support::post(&base, &token, &body).await, 401, "revoked");
    assert_eq!(support::post(&base, &new_token, &body).await, 200);
    c.goto(&format!("{base}/integrations")).await.unwrap();
    assert!(text(&c, "#connections").await.contains("healthy"));
    shots.take(&c, "integrations").await;

    // Consent denied on Salesforce's page ends on a page that says what to do.
    css(&c, "#setup").await.click().await.unwrap();
    let name = css(&c, "#name").await;
    name.clear().await.unwrap();
    name.send_keys("beta").await.unwrap();
    css(&c, "#place-emulator").await.click().await.unwrap();
    css(&c, "#connect").await.click().await.unwrap();
    css(&c, "#password")
        .await
        .send_keys("emulator")
        .await
        .unwrap();
    css(&c, "#deny").await.click().await.unwrap();
    assert_eq!(text(&c, "#error-title").await, "Access was denied");
    assert!(text(&c, "#error-todo").await.contains("choose Allow"));
    assert_eq!(text(&c, "#error-action").await, "Start again");
    audit(&c, &mut shots, &axe, "error-denied").await;
    assert!(s.store.connection("beta").await.is_err());

    // What Salesforce holds: each request once, with its latest state.
    let rows =
        s.sf.query(
            "SELECT RequestId__c, Status__c, Account__r.Name FROM Request__c ORDER BY RequestId__c",
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["RequestId__c"].as_str().unwrap().to_string(),
                r["Status__c"].as_str().unwrap_or("").to_string(),
                r["Account__r"]["Name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("R-DEAD".into(), "In Progress".into(), "Acme Corp".into()),
            ("R-OK".into(), "Open".into(), "Acme Corp".into()),
            ("R-SKIP".into(), "Open".into(), "Newco".into()),
        ]
    );
    // Every page at 1280 px and on a phone (390 px): screenshots, nothing
    // scrolling sideways, and axe-core.
    let pages = [
        ("integrations", format!("{base}/integrations")),
        ("connect", format!("{base}/connect")),
        ("setup-done", setup_url),
        ("activity", format!("{base}/connections/acme")),
        ("skipped", format!("{base}/connections/acme?tab=skipped")),
        ("failed", format!("{base}/connections/acme?tab=failed")),
        ("setup", format!("{base}/connections/acme?tab=setup")),
        ("search", search_url),
        ("request", history_url),
        ("token-roll", roll_url),
        ("disconnect", format!("{base}/connections/acme/disconnect")),
        ("not-found", format!("{base}/no/such/page")),
    ];
    for (name, url) in &pages {
        look(&c, &mut shots, &axe, &format!("{name}-1280"), url).await;
    }
    c.goto(&format!("{base}/integrations")).await.unwrap();
    css(&c, "button.link").await.click().await.unwrap();
    look(&c, &mut shots, &axe, "login-1280", &format!("{base}/login")).await;
    c.close().await.unwrap();

    let phone = browser(&driver_url, &s.dir.join("chromium-phone"), true).await;
    look(
        &phone,
        &mut shots,
        &axe,
        "login-390",
        &format!("{base}/login"),
    )
    .await;
    log_in(&phone, &base).await;
    let width = phone
        .execute("return window.innerWidth;", vec![])
        .await
        .unwrap();
    assert_eq!(width, 390, "a phone's width");
    for (name, url) in &pages {
        look(&phone, &mut shots, &axe, &format!("{name}-390"), url).await;
    }
    // A token rolled on the phone: its pages fit too.
    phone
        .goto(&format!("{base}/connections/acme?tab=setup"))
        .await
        .unwrap();
    css(&phone, "#new-token").await.click().await.unwrap();
    css(&phone, "#confirm-new-token")
        .await
        .click()
        .await
        .unwrap();
    audit(&phone, &mut shots, &axe, "token-new-390").await;
    phone.close().await.unwrap();
    assert!(shots.n >= 40);
}
