//! The admin page in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, installed by scripts/install-test-deps.sh) driven
//! through WebDriver. It logs in, connects the emulator by approving on its
//! consent page, watches the setup finish, posts webhooks with the token it
//! was shown, opens a synced record's link, retries a skipped request after
//! adding its Account, and retries a dead letter. Screenshots of each page go
//! to `target/browser-artifacts/`.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use support::{site, Options, ADMIN_PASSWORD};

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

async fn browser(driver_url: &str, profile: &std::path::Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1366,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_connects_and_fixes_things_in_a_real_browser() {
    let s = site(Options::default()).await;
    let (_driver, driver_url) = start_driver().await;
    let profile = s.dir.join("chromium-profile");
    let c = browser(&driver_url, &profile).await;
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
    shots.take(&c, "setup-done").await;
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
    assert_eq!(
        c.find_all(Locator::Css("a.record-link"))
            .await
            .unwrap()
            .len(),
        3
    );
    shots.take(&c, "connection-all-synced").await;
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
    shots.take(&c, "error-denied").await;
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
    c.close().await.unwrap();
    assert!(shots.n >= 14);
}
