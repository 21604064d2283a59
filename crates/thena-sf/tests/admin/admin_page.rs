//! The admin page over HTTP: login and its brake, session cookie, CSRF and
//! origin checks, the OAuth callback's state rules, the error pages, the
//! whole connect flow against the emulator's consent page, the actions, and
//! that no secret is ever rendered but a new webhook token, once.

use std::time::{Duration, Instant};

use crate::support::{self, site, Options, Site, ADMIN_PASSWORD};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A browser without a browser: a cookie, no redirects followed.
struct Agent {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

impl Agent {
    fn new(base: &str) -> Agent {
        Agent {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookie: None,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn done(&mut self, r: reqwest::RequestBuilder) -> Page {
        let r = match &self.cookie {
            Some(c) => r.header("cookie", format!("thena_sf_session={c}")),
            None => r,
        };
        let resp = r.send().await.unwrap();
        let headers = resp.headers().clone();
        if let Some(c) = headers.get(SET_COOKIE) {
            let v = c.to_str().unwrap();
            let value = v.split(';').next().unwrap().split_once('=').unwrap().1;
            self.cookie = (!value.is_empty()).then(|| value.to_string());
        }
        Page {
            status: resp.status().as_u16(),
            headers,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self.http.get(self.url(path));
        self.done(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self.http.post(self.url(path)).form(form);
        self.done(r).await
    }

    async fn post_from(&mut self, path: &str, origin: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(self.url(path))
            .header("origin", origin)
            .form(form);
        self.done(r).await
    }

    async fn login(&mut self) -> Page {
        let p = self.post("/login", &[("password", ADMIN_PASSWORD)]).await;
        assert_eq!(p.status, 303, "{}", p.body);
        p
    }

    /// Starts connecting `name` to the emulator; returns the consent page's URL.
    async fn start_connect(&mut self, name: &str) -> String {
        let page = self.get("/connect").await;
        let csrf = page.csrf();
        let p = self
            .post(
                "/connect",
                &[("csrf", &csrf), ("name", name), ("place", "emulator")],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        p.location()
    }

    /// Answers the emulator's consent page as `user` (approve or deny); returns the callback URL.
    async fn consent(&mut self, authorize_url: &str, user: &str, action: &str) -> String {
        let url = reqwest::Url::parse(authorize_url).unwrap();
        let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        form.push(("username".into(), user.into()));
        form.push(("password".into(), "emulator".into()));
        form.push(("action".into(), action.into()));
        let post = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path();
        let resp = self.http.post(post).form(&form).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302);
        resp.headers()[LOCATION].to_str().unwrap().to_string()
    }

    /// Follows a setup page until it is finished.
    async fn finish_setup(&mut self, setup: &str) -> Page {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = self.get(setup).await;
            if !p.body.contains("http-equiv=\"refresh\"") {
                return p;
            }
            assert!(Instant::now() < deadline, "setup never finished");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of an element with this id (`<code id="x">value</code>`).
fn text_of(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    Some(body[at..].split('<').next()?.to_string())
}

/// A site, an agent logged in to it, and `acme` connected through the page
/// with the webhook token it showed.
async fn connected_site() -> (Site, Agent, String) {
    let (s, mut a) = logged_in(Options::default()).await;
    let token = connect_via_page(&s, &mut a, "acme").await;
    (s, a, token)
}

/// A site and an agent logged in to it.
async fn logged_in(opts: Options) -> (Site, Agent) {
    let s = site(opts).await;
    let mut a = Agent::new(&s.app.url());
    a.login().await;
    (s, a)
}

async fn connect_via_page(site: &Site, a: &mut Agent, name: &str) -> String {
    let authorize = a.start_connect(name).await;
    assert!(authorize.starts_with(&format!("{}/services/oauth2/authorize?", site.emu.base_url)));
    for p in [
        "state=",
        "code_challenge=",
        "code_challenge_method=S256",
        "redirect_uri=",
    ] {
        assert!(authorize.contains(p), "{authorize} lacks {p}");
    }
    let callback = a.consent(&authorize, "admin@example.com", "approve").await;
    let p = a.get(&callback).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let done = a.finish_setup(&p.location()).await;
    assert!(done.body.contains("id=\"setup-done\""), "{}", done.body);
    text_of(&done.body, "webhook-token").expect("the token is shown on the first view")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_login_and_the_cookie_is_guarded() {
    let s = site(Options::default()).await;
    let mut a = Agent::new(&s.app.url());
    for path in ["/integrations", "/connect", "/connections/x", "/setup/x"] {
        let p = a.get(path).await;
        assert_eq!((p.status, p.location().as_str()), (303, "/login"), "{path}");
    }
    let p = a.post("/connections/x/dead/retry", &[("csrf", "x")]).await;
    assert_eq!(p.status, 303, "a form without a session goes to the login");
    let p = a.post("/login", &[("password", "wrong")]).await;
    assert_eq!(p.status, 401);
    assert!(p.body.contains("That password is not right."));
    assert!(a.cookie.is_none());
    let p = a.login().await;
    let cookie = p.headers[SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let p = a.get("/integrations").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("No org connected yet"));
    for (h, v) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(p.headers[h], v);
    }
    assert!(p.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    // The session is stored only as a hash.
    let raw = a.cookie.clone().unwrap();
    let db = std::fs::read(s.dir.join("thena-sf.db")).unwrap_or_default();
    let wal = std::fs::read(s.dir.join("thena-sf.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(raw.len()).any(|w| w == raw.as_bytes()));
    }
    // Log out: the old cookie no longer works.
    let csrf = p.csrf();
    let out = a.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location().as_str()), (303, "/login"));
    assert!(out.headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    a.cookie = Some(raw);
    assert_eq!(a.get("/integrations").await.status, 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_are_braked() {
    let s = site(Options::default()).await;
    let mut a = Agent::new(&s.app.url());
    for i in 0..5 {
        let p = a.post("/login", &[("password", "guess")]).await;
        assert_eq!(p.status, 401);
        // The last try ahead of the brake says so.
        assert_eq!(
            p.body.contains("One more wrong password"),
            i == 3,
            "try {i}"
        );
    }
    let p = a.post("/login", &[("password", ADMIN_PASSWORD)]).await;
    assert_eq!(
        p.status, 429,
        "even the right password waits after five wrong ones"
    );
    assert!(p.body.contains("Too many wrong passwords"));
    assert!(a.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_over_https() {
    let s = site(Options {
        public_url: "https://sync.example.com".into(),
        ..Default::default()
    })
    .await;
    let mut a = Agent::new(&s.app.url());
    let p = a.login().await;
    assert!(p.headers[SET_COOKIE].to_str().unwrap().contains("; Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_csrf_token_or_from_elsewhere_are_refused() {
    let (s, mut a, token) = connected_site().await;
    assert!(token.starts_with("tsf_"));
    let page = a.get("/connections/acme?tab=failed").await;
    let csrf = page.csrf();
    let paths = [
        "/connections/acme/dead/retry",
        "/connections/acme/dead/discard",
        "/connections/acme/skipped/retry",
        "/connections/acme/fix",
        "/connections/acme/webhook-token",
        "/connections/acme/disconnect",
        "/connections/acme/reconnect",
        "/connect",
        "/logout",
    ];
    for path in paths {
        let p = a.post(path, &[]).await;
        assert_eq!(p.status, 403, "{path} without a token");
        assert!(p.body.contains("security token"), "{path}");
        let p = a.post(path, &[("csrf", "tsf_forged")]).await;
        assert_eq!(p.status, 403, "{path} with a forged token");
        let p = a
            .post_from(path, "https://evil.example", &[("csrf", &csrf)])
            .await;
        assert_eq!(p.status, 403, "{path} from another site");
        assert!(p.body.contains("another site"), "{path}");
    }
    // Nothing was changed: the connection is there, its token still works.
    assert!(s.store.connection("acme").await.is_ok());
    let body = support::webhook("R-1", "Harsh Vardhan", "harsh@acme.io", "Acme Corp", "OPEN");
    assert_eq!(support::post(&s.app.url(), &token, &body).await, 200);
    // With the token and from our own origin, the same form works.
    let origin = s.app.url();
    let p = a
        .post_from("/connections/acme/dead/retry", &origin, &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 303);
    // A login posted from another site is refused too.
    let mut b = Agent::new(&s.app.url());
    let p = b
        .post_from(
            "/login",
            "https://evil.example",
            &[("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(p.status, 403);
    assert!(b.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_refuses_unknown_reused_and_foreign_states() {
    let (s, mut a) = logged_in(Options::default()).await;
    let p = a.get("/oauth/callback?code=abc").await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("carried no state"));
    let p = a.get("/oauth/callback?code=abc&state=tsf_made_up").await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("unknown or was already used"));

    // A real flow: the callback works once, then its state is spent.
    let authorize = a.start_connect("acme").await;
    let callback = a.consent(&authorize, "admin@example.com", "approve").await;
    assert_eq!(a.get(&callback).await.status, 303);
    let again = a.get(&callback).await;
    assert_eq!(again.status, 400);
    assert!(again.body.contains("unknown or was already used"));

    // A flow started in one session cannot be finished in another.
    let authorize = a.start_connect("beta").await;
    let callback = a.consent(&authorize, "admin@example.com", "approve").await;
    let mut other = Agent::new(&s.app.url());
    other.login().await;
    let p = other.get(&callback).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("started from another session"));
    // Without any session the callback says to log in, and connects nothing.
    let authorize = a.start_connect("gamma").await;
    let callback = a.consent(&authorize, "admin@example.com", "approve").await;
    let p = Agent::new(&s.app.url()).get(&callback).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("no admin session"));
    assert!(s.store.connection("beta").await.is_err());
    assert!(s.store.connection("gamma").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_on_the_way_end_on_a_page_that_says_what_to_do() {
    let (s, mut a) = logged_in(Options::default()).await;

    // Denied consent.
    let authorize = a.start_connect("acme").await;
    let callback = a.consent(&authorize, "admin@example.com", "deny").await;
    assert!(callback.contains("error=access_denied"));
    let p = a.get(&callback).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("Access was denied"));
    assert!(p.body.contains("choose Allow"));
    // Its button does what it says: start again, on the Connect form.
    assert!(
        p.body
            .contains("<a class=\"button\" id=\"error-action\" href=\"/connect\">Start again</a>"),
        "{}",
        p.body
    );

    // An expired (or forged) authorization code.
    let authorize = a.start_connect("acme").await;
    let callback = a.consent(&authorize, "admin@example.com", "approve").await;
    let url = reqwest::Url::parse(&callback).unwrap();
    let state: String = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let p = a
        .get(&format!("/oauth/callback?code=expired-code&state={state}"))
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("did not accept the sign-in"), "{}", p.body);
    assert!(p.body.contains("expired"));

    // A user without permission to change the org's setup: the setup stops and says why.
    let authorize = a.start_connect("acme").await;
    let callback = a.consent(&authorize, "rep@example.com", "approve").await;
    let p = a.get(&callback).await;
    assert_eq!(p.status, 303);
    let done = a.finish_setup(&p.location()).await;
    assert!(
        done.body.contains("may not change the org&#39;s setup")
            || done.body.contains("may not change the org's setup"),
        "{}",
        done.body
    );
    assert!(done.body.contains("System Administrator"));

    // An app only pre-authorized profiles may use (2026's External Client
    // Apps): a Standard User is refused at Salesforce's consent step, and the
    // page names the cause and the next step.
    let set_policy = |on: bool| {
        let mut auth = s.emu.emulator.auth.lock();
        let app = auth
            .apps
            .iter_mut()
            .find(|a| a.client_id == "local-client")
            .unwrap();
        app.admin_approved = on;
        app.preauthorized_profiles = vec!["System Administrator".into()];
    };
    set_policy(true);
    let authorize = a.start_connect("approved-only").await;
    let callback = a.consent(&authorize, "rep@example.com", "approve").await;
    let p = a.get(&callback).await;
    set_policy(false);
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.body.contains("not approved for this app"), "{}", p.body);
    assert!(p.body.contains("External Client App Manager"), "{}", p.body);
    assert!(
        s.store.connection("approved-only").await.is_err(),
        "nothing was connected"
    );
    // The Set up page says how to make the app (External Client App), with the callback to copy.
    let setup = a.get("/connect").await;
    assert!(
        setup.body.contains("External Client App Manager"),
        "{}",
        setup.body
    );
    let callback_url = text_of(&setup.body, "callback-url").unwrap();
    assert!(callback_url.ends_with("/oauth/callback"), "{callback_url}");
    assert!(setup.body.contains("data-copy=\"callback-url\""));

    // No Connected App configured: real orgs cannot be chosen, and a forged choice says why.
    let page = a.get("/connect").await;
    assert!(page
        .body
        .contains("id=\"place-production\" value=\"production\" disabled"));
    // With only the emulator offered, the name offered is not "production".
    assert!(
        page.body.contains("name=\"name\" value=\"emulator\""),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let p = a
        .post(
            "/connect",
            &[("csrf", &csrf), ("name", "prod"), ("place", "production")],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("No Connected App is configured"));
    // Bad names and domains are refused with the reason.
    let p = a
        .post(
            "/connect",
            &[
                ("csrf", &csrf),
                ("name", "no spaces"),
                ("place", "emulator"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("letters, digits"));
    // A connection page that does not exist.
    let p = a.get("/connections/nope").await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("No such connection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_orgs_go_to_salesforce_with_our_callback() {
    let s = site(Options {
        oauth: true,
        ..Default::default()
    })
    .await;
    let mut a = Agent::new(&s.app.url());
    a.login().await;
    let csrf = a.get("/connect").await.csrf();
    for (place, domain, host) in [
        (
            "production",
            "",
            "https://login.salesforce.com/services/oauth2/authorize?",
        ),
        (
            "sandbox",
            "",
            "https://test.salesforce.com/services/oauth2/authorize?",
        ),
        (
            "custom",
            "acme.my.salesforce.com",
            "https://acme.my.salesforce.com/services/oauth2/authorize?",
        ),
    ] {
        let p = a
            .post(
                "/connect",
                &[
                    ("csrf", &csrf),
                    ("name", place),
                    ("place", place),
                    ("domain", domain),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        let to = p.location();
        assert!(to.starts_with(host), "{to}");
        assert!(to.contains("client_id=real-app"));
        let callback = format!("{}/oauth/callback", s.app.url());
        assert!(to.contains(&format!(
            "redirect_uri={}",
            form_urlencoded::byte_serialize(callback.as_bytes()).collect::<String>()
        )));
        assert!(
            !to.contains("real-secret"),
            "the secret never goes to the browser"
        );
    }
    let p = a
        .post(
            "/connect",
            &[
                ("csrf", &csrf),
                ("name", "x"),
                ("place", "custom"),
                ("domain", "evil.example.com"),
            ],
        )
        .await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("not a Salesforce login domain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_and_the_actions_over_http() {
    let (s, mut a, token) = connected_site().await;
    // The token is shown once: the setup page no longer has it.
    let conn = s.store.connection("acme").await.unwrap();
    assert!(conn.provisioned_at.is_some());
    // Nothing from Thena yet: the page says so and where to point Thena,
    // not "healthy"; zero counts are not coloured.
    let fresh = a.get("/connections/acme").await;
    assert_eq!(
        text_of(&fresh.body, "state").as_deref(),
        Some("waiting for the first webhook")
    );
    assert!(fresh
        .body
        .contains(&format!("{}/webhooks/thena/acme", s.app.url())));
    assert_eq!(
        text_of(&fresh.body, "last-webhook").as_deref(),
        Some("none yet")
    );
    assert_eq!(
        text_of(&fresh.body, "last-written").as_deref(),
        Some("none yet")
    );
    assert!(fresh
        .body
        .contains("<span class=\"value\" id=\"failed\">0</span>"));
    assert!(a
        .get("/integrations")
        .await
        .body
        .contains("waiting for the first webhook"));

    let base = s.app.url();
    let post = |id: &str, email: &str, team: &str, status: &str| {
        let body = support::webhook(id, "Zed Doe", email, team, status);
        let (base, token) = (base.clone(), token.clone());
        async move { support::post(&base, &token, &body).await }
    };
    support::restrict_status(&s.sf, true).await;
    for (id, email, team, status) in [
        ("R-OK", "harsh@acme.io", "Acme Corp", "OPEN"),
        ("R-SKIP", "zed@newco.example", "Newco", "OPEN"),
        ("R-DEAD", "harsh@acme.io", "Acme Corp", "IN_PROGRESS"),
    ] {
        assert_eq!(post(id, email, team, status).await, 200, "{id}");
    }
    let c = support::wait_for(&s.store, |c| {
        c.pending == 0 && c.synced + c.skipped + c.failed == 3
    })
    .await;
    assert_eq!((c.synced, c.skipped, c.failed), (1, 1, 1));

    let page = a.get("/connections/acme").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("R-OK"));
    // A record refused within the hour: degraded, with the count and the error.
    assert_eq!(
        text_of(&page.body, "state").as_deref(),
        Some("degraded"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(
            "1 record failed in the last hour; the latest: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
        ),
        "{}",
        page.body
    );
    assert!(a.get("/integrations").await.body.contains("degraded"));
    let metrics = reqwest::get(format!("{}/metrics", s.app.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("thena_sf_records_failed_last_hour{connection=\"acme\"} 1"),
        "{metrics}"
    );
    assert!(page.body.contains("/lightning/r/Request__c/"));
    // Each row says what the request is and where it landed, and leads to
    // its own page.
    for want in [
        "Request R-OK",
        "harsh@acme.io",
        "/lightning/r/Contact/",
        "/lightning/r/Account/",
        "href=\"/connections/acme/requests/R%2DOK\"",
    ] {
        assert!(page.body.contains(want), "{want}: {}", page.body);
    }
    assert_eq!(text_of(&page.body, "synced").as_deref(), Some("1"));
    for id in ["last-webhook", "last-written"] {
        let when = text_of(&page.body, id).unwrap();
        assert!(when.ends_with("(just now)"), "{id}: {when}");
    }
    let csrf = page.csrf();
    let skipped = a.get("/connections/acme?tab=skipped").await;
    assert!(skipped.body.contains("R-SKIP"));
    assert!(
        skipped.body.contains("no Account named &#39;Newco&#39;")
            || skipped.body.contains("no Account named 'Newco'"),
        "{}",
        skipped.body
    );
    let failed = a.get("/connections/acme?tab=failed").await;
    assert!(failed
        .body
        .contains("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"));
    let dead_id = s.store.dead_letters("acme", 10, 0).await.unwrap()[0]
        .id
        .to_string();

    // Fix both causes in Salesforce, then retry from the page.
    s.sf.create("Account", &serde_json::json!({"Name": "Newco"}))
        .await
        .unwrap();
    support::restrict_status(&s.sf, false).await;
    let p = a
        .post(
            "/connections/acme/skipped/retry",
            &[("csrf", &csrf), ("request_id", "R-SKIP")],
        )
        .await;
    assert_eq!(p.status, 303);
    // The notice is the server's (a flash): shown once, never read from the URL.
    assert_eq!(p.location(), "/connections/acme?tab=skipped");
    let notice = a.get(&p.location()).await;
    assert!(notice.body.contains("1 skipped request put back"));
    // Retried: it leaves the skipped list and counts once (queued or synced),
    // on the page and in the figures the page refreshes itself from.
    assert!(
        !notice.body.contains("data-request=\"R-SKIP\""),
        "{}",
        notice.body
    );
    let live: serde_json::Value =
        serde_json::from_str(&a.get("/connections/acme/live").await.body).unwrap();
    assert_eq!(live["skipped"], 0, "{live}");
    assert_eq!(live["failed"], 1, "{live}");
    assert_eq!(
        live["queued"].as_i64().unwrap() + live["synced"].as_i64().unwrap(),
        2,
        "{live}"
    );
    assert!(!a.get(&p.location()).await.body.contains("put back"));
    let forged = a
        .get("/connections/acme?tab=skipped&notice=retried-skipped&n=999999")
        .await;
    assert!(!forged.body.contains("999999"), "a notice from the URL");
    // A malformed query string gets the page; an unknown path our 404 page;
    // an unreadable callback a page that says what to do.
    let odd = a.get("/connections/acme?page=abc&tab=%ZZ").await;
    assert_eq!(odd.status, 200, "{}", odd.body);
    assert!(odd.body.contains("<html"), "{}", odd.body);
    let lost = a.get("/no/such/page").await;
    assert_eq!(lost.status, 404);
    assert!(lost.body.contains("No such page"), "{}", lost.body);
    let cb = a.get("/oauth/callback?state=a&state=b").await;
    assert_eq!(cb.status, 400);
    assert!(cb.body.contains("Start again"), "{}", cb.body);
    let p = a
        .post(
            "/connections/acme/dead/retry",
            &[("csrf", &csrf), ("id", &dead_id)],
        )
        .await;
    assert_eq!(p.status, 303);
    support::wait_for(&s.store, |c| c.synced == 3).await;

    // Search by requestor, by title, and a wildcard taken literally.
    let found = a.get("/connections/acme/requests?q=HARSH%40acme").await;
    assert!(
        found.body.contains("R-OK")
            && found.body.contains("R-DEAD")
            && !found.body.contains("R-SKIP"),
        "{}",
        found.body
    );
    let found = a.get("/connections/acme/requests?q=request+r-skip").await;
    assert!(found.body.contains("R-SKIP"), "{}", found.body);
    let none = a.get("/connections/acme/requests?q=%25").await;
    assert!(none.body.contains("id=\"no-match\""), "{}", none.body);
    // A request's page: each delivery and each step of its sync, with why.
    let story = a.get("/connections/acme/requests/R-DEAD").await;
    assert_eq!(story.status, 200, "{}", story.body);
    for want in [
        "request update (IN_PROGRESS)",
        "queued for Salesforce",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "synced",
        "Request R-DEAD",
    ] {
        assert!(story.body.contains(want), "{want}: {}", story.body);
    }
    let unknown = a.get("/connections/acme/requests/NOPE-1").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("No such request"), "{}", unknown.body);

    assert_ne!(
        text_of(&a.get("/connections/acme").await.body, "state").as_deref(),
        Some("degraded"),
        "retried and synced: no longer degraded"
    );

    // Thena's webhook app announces itself: the page says which organisation feeds it.
    let installed = serde_json::json!({"event_type": "app:installation", "organization_id": "OG-7",
        "team_ids": ["T1", "T2"], "bot_token": "xoxb-never-shown"});
    assert_eq!(support::post(&base, &token, &installed).await, 200);
    let line = text_of(
        &a.get("/connections/acme?tab=setup").await.body,
        "thena-app",
    )
    .unwrap();
    assert!(line.contains("organisation OG-7, teams T1, T2"), "{line}");
    assert!(!line.contains("xoxb"), "{line}");

    // The doctor's stored result (taken at setup), Check now, and Fix.
    let api = || s.emu.emulator.usage.lock().used(std::time::Instant::now());
    let calls = api();
    let setup = a.get("/connections/acme?tab=setup").await;
    assert_eq!(
        api(),
        calls,
        "viewing the doctor's result costs no API call"
    );
    assert!(setup.body.contains("id=\"doctor-ok\""), "{}", setup.body);
    let first = text_of(&setup.body, "checked-at").unwrap();
    assert!(first.starts_with("checked at 20"), "{first}");
    assert!(
        !setup.body.contains("id=\"fix\""),
        "no Fix when nothing needs fixing"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let p = a.post("/connections/acme/check", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    let checked = a.get(&p.location()).await;
    assert!(
        checked.body.contains("every check passes"),
        "{}",
        checked.body
    );
    assert_ne!(
        text_of(&checked.body, "checked-at").unwrap(),
        first,
        "checked again"
    );
    // What Fix cannot repair is named; Fix appears when it can repair something.
    test_support::emulator::add_required_field(&s.sf, "Request__c.Region__c").await;
    let p = a.post("/connections/acme/check", &[("csrf", &csrf)]).await;
    let page = a.get(&p.location()).await;
    assert!(
        text_of(&page.body, "cannot-fix").is_some_and(|t| t.starts_with("Fix cannot repair")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<strong>required fields</strong>"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("id=\"fix\""),
        "nothing Fix repairs fails"
    );
    // ... and every record is refused while it stays required: degraded, naming the error.
    assert_eq!(
        post("R-REQ", "harsh@acme.io", "Acme Corp", "OPEN").await,
        200
    );
    support::wait_for(&s.store, |c| c.failed == 1).await;
    let page = a.get("/connections/acme").await;
    assert_eq!(text_of(&page.body, "state").as_deref(), Some("degraded"));
    assert!(
        page.body.contains("REQUIRED_FIELD_MISSING"),
        "{}",
        page.body
    );
    let psa = s
        .sf
        .query("SELECT Id FROM PermissionSetAssignment WHERE PermissionSet.Name = 'Thena_Request_Sync'")
        .await
        .unwrap();
    s.sf.delete("PermissionSetAssignment", psa[0]["Id"].as_str().unwrap())
        .await
        .unwrap();
    let p = a.post("/connections/acme/check", &[("csrf", &csrf)]).await;
    let page = a.get(&p.location()).await;
    assert!(page.body.contains("id=\"fix\""), "{}", page.body);
    assert!(page.body.contains("Fix repairs this."));
    s.sf.metadata_delete("CustomField", &["Request__c.Region__c"])
        .await
        .unwrap();
    let p = a.post("/connections/acme/fix", &[("csrf", &csrf)]).await;
    assert_eq!(p.status, 303);
    let fixed = a.get(&p.location()).await;
    assert!(
        fixed
            .body
            .contains("The org&#39;s setup was repaired: 1 change made")
            || fixed
                .body
                .contains("The org's setup was repaired: 1 change made"),
        "{}",
        fixed.body
    );
    assert!(
        fixed.body.contains("id=\"doctor-ok\""),
        "Fix stores the doctor's new result: {}",
        fixed.body
    );

    // A new webhook token: shown once; the old one stops working.
    let p = a
        .post("/connections/acme/webhook-token", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 200);
    let new_token = text_of(&p.body, "webhook-token").unwrap();
    assert_ne!(new_token, token);
    assert_eq!(post("R-2", "harsh@acme.io", "Acme Corp", "OPEN").await, 401);

    // A roll asks first, and may keep the old token working for a while:
    // both work until the grace ends, or until the old one is revoked.
    let roll = a.get("/connections/acme/webhook-token").await;
    assert!(
        roll.body.contains("id=\"confirm-new-token\""),
        "{}",
        roll.body
    );
    let p = a
        .post(
            "/connections/acme/webhook-token",
            &[("csrf", &csrf), ("grace_hours", "24")],
        )
        .await;
    assert_eq!(p.status, 200);
    assert!(
        p.body.contains("The old token keeps working until"),
        "{}",
        p.body
    );
    let newest = text_of(&p.body, "webhook-token").unwrap();
    let with = |t: &str, id: &str| {
        let body = support::webhook(id, "Zed Doe", "harsh@acme.io", "Acme Corp", "OPEN");
        let (base, t) = (base.clone(), t.to_string());
        async move { support::post(&base, &t, &body).await }
    };
    assert_eq!(
        with(&new_token, "R-3").await,
        200,
        "the old token, in its grace"
    );
    assert_eq!(with(&newest, "R-4").await, 200);
    let setup = a.get("/connections/acme?tab=setup").await;
    assert!(
        setup.body.contains("id=\"previous-token\""),
        "{}",
        setup.body
    );
    let p = a
        .post(
            "/connections/acme/webhook-token/revoke-old",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(p.status, 303);
    assert!(a
        .get(&p.location())
        .await
        .body
        .contains("The previous webhook token no longer works"));
    assert_eq!(with(&new_token, "R-5").await, 401, "revoked");
    assert_eq!(with(&newest, "R-6").await, 200);
    // A grace that has ended lets the old token in no more.
    let last = thena_sf::crypto::new_token();
    let ended = chrono::Utc::now().timestamp_millis() - 1;
    s.store
        .roll_webhook_token("acme", &thena_sf::crypto::token_hash(&last), Some(ended))
        .await
        .unwrap();
    s.app
        .add_connection(&s.store.connection("acme").await.unwrap());
    assert_eq!(with(&newest, "R-7").await, 401, "its grace is over");
    assert_eq!(with(&last, "R-8").await, 200);

    // No page shows a Salesforce token, the webhook token, or the session.
    let conn = s.store.connection("acme").await.unwrap();
    let secrets = [
        conn.tokens.access_token.expose().to_string(),
        conn.tokens
            .refresh_token
            .clone()
            .unwrap()
            .expose()
            .to_string(),
        token.clone(),
        new_token.clone(),
        newest.clone(),
        last.clone(),
        a.cookie.clone().unwrap(),
    ];
    for path in [
        "/integrations",
        "/connections/acme",
        "/connections/acme?tab=skipped",
        "/connections/acme?tab=failed",
        "/connections/acme?tab=setup",
        "/connections/acme/disconnect",
        "/connect",
    ] {
        let p = a.get(path).await;
        assert_eq!(p.status, 200, "{path}");
        for secret in &secrets {
            assert!(!p.body.contains(secret.as_str()), "{path} shows a secret");
        }
    }

    // Disconnect: revoked in Salesforce, webhooks refused, the connection gone.
    let refresh = conn.tokens.refresh_token.clone().unwrap();
    let p = a
        .post("/connections/acme/disconnect", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (p.status, p.location().as_str()),
        (303, "/integrations"),
        "{}",
        p.body
    );
    assert!(s.store.connection("acme").await.is_err());
    assert_eq!(post("R-3", "harsh@acme.io", "Acme Corp", "OPEN").await, 404);
    let oauth = conn.oauth_app("");
    let refused = oauth.refresh(&reqwest::Client::new(), &refresh).await;
    assert!(refused.is_err(), "the refresh token was revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lists_page_through() {
    let (s, mut a, token) = connected_site().await;
    // 60 requests from people nobody knows: 60 skipped, 60 activity rows.
    for i in 0..60 {
        let body = support::webhook(
            &format!("P-{i:02}"),
            "Nobody",
            &format!("n{i}@nowhere{i}.example"),
            &format!("Nowhere {i}"),
            "OPEN",
        );
        assert_eq!(support::post(&s.app.url(), &token, &body).await, 200);
    }
    support::wait_for(&s.store, |c| c.skipped == 60).await;
    let rows = |body: &str| body.matches("class=\"small-button retry-skipped\"").count();
    let first = a.get("/connections/acme?tab=skipped").await;
    assert_eq!(rows(&first.body), 50);
    assert!(first.body.contains("id=\"next-page\""));
    assert!(!first.body.contains("id=\"prev-page\""));
    let second = a.get("/connections/acme?tab=skipped&page=2").await;
    assert_eq!(rows(&second.body), 10);
    assert!(second.body.contains("id=\"prev-page\""));
    assert!(!second.body.contains("id=\"next-page\""));
    let activity = a.get("/connections/acme?tab=activity&page=2").await;
    assert!(activity.body.contains("Page 2"));
    assert!(activity.body.contains("P-"));
    // Nonsense paging falls back to the first page.
    let p = a.get("/connections/acme?tab=skipped&page=-4").await;
    assert_eq!(rows(&p.body), 50);
    // Retry all puts every skipped request back.
    let csrf = first.csrf();
    let p = a
        .post(
            "/connections/acme/skipped/retry",
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert!(a
        .get(&p.location())
        .await
        .body
        .contains("60 skipped requests put back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_keeps_the_webhook_and_takes_new_tokens() {
    let (s, mut a, token) = connected_site().await;
    let before = s.store.connection("acme").await.unwrap();
    // Salesforce refused the refresh token: the page says so and offers Reconnect.
    s.store
        .set_status(
            "acme",
            thena_sf::store::ConnStatus::ReconnectNeeded,
            Some("the refresh token was refused"),
        )
        .await
        .unwrap();
    let page = a.get("/connections/acme").await;
    assert!(page.body.contains("reconnect needed"));
    assert!(page.body.contains("the refresh token was refused"));
    let p = a
        .post(
            "/connections/acme/reconnect",
            &[("csrf", page.csrf().as_str())],
        )
        .await;
    assert_eq!(p.status, 303);
    let callback = a
        .consent(&p.location(), "admin@example.com", "approve")
        .await;
    let p = a.get(&callback).await;
    let done = a.finish_setup(&p.location()).await;
    assert!(done.body.contains("id=\"token-kept\""), "{}", done.body);
    assert!(
        text_of(&done.body, "webhook-token").is_none(),
        "no new token on a reconnect"
    );
    let after = s.store.connection("acme").await.unwrap();
    assert_eq!(after.status, thena_sf::store::ConnStatus::Healthy);
    assert_ne!(
        after.tokens.access_token.expose(),
        before.tokens.access_token.expose()
    );
    assert_eq!(after.connected_at, before.connected_at, "the cut-off stays");
    // The same webhook token still works, and the request syncs.
    let body = support::webhook(
        "RC-1",
        "Harsh Vardhan",
        "harsh@acme.io",
        "Acme Corp",
        "OPEN",
    );
    assert_eq!(support::post(&s.app.url(), &token, &body).await, 200);
    support::wait_for(&s.store, |c| c.synced == 1).await;
}

/// Connecting an org that already has a connection warns first and connects
/// nothing (the sign-in is given back); ticking "connect it again anyway"
/// connects it. A reconnect of the same connection is not a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_to_the_same_org_warns_first() {
    let (s, mut a) = logged_in(Options::default()).await;
    connect_via_page(&s, &mut a, "acme").await;

    let authorize = a.start_connect("acme-again").await;
    let callback = a.consent(&authorize, "admin@example.com", "approve").await;
    let warned = a.get(&callback).await;
    assert_eq!(warned.status, 400, "{}", warned.body);
    assert!(
        warned
            .body
            .contains("is already connected as &#39;acme&#39;")
            || warned.body.contains("is already connected as 'acme'"),
        "{}",
        warned.body
    );
    assert!(
        warned.body.contains("id=\"same-org-ok\""),
        "{}",
        warned.body
    );
    assert!(
        warned.body.contains("value=\"acme-again\""),
        "{}",
        warned.body
    );
    assert!(
        s.store.connection("acme-again").await.is_err(),
        "nothing is connected before the admin confirms"
    );

    let csrf = warned.csrf();
    let p = a
        .post(
            "/connect",
            &[
                ("csrf", csrf.as_str()),
                ("name", "acme-again"),
                ("place", "emulator"),
                ("same_org_ok", "1"),
            ],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let callback = a
        .consent(&p.location(), "admin@example.com", "approve")
        .await;
    let p = a.get(&callback).await;
    assert_eq!(p.status, 303, "confirmed: {}", p.body);
    let done = a.finish_setup(&p.location()).await;
    assert!(done.body.contains("id=\"setup-done\""), "{}", done.body);
    assert!(s.store.connection("acme-again").await.is_ok());

    // Reconnecting acme (same org, same connection) is not a second one.
    let page = a.get("/connections/acme").await;
    let p = a
        .post(
            "/connections/acme/reconnect",
            &[("csrf", page.csrf().as_str())],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.body);
    let callback = a
        .consent(&p.location(), "admin@example.com", "approve")
        .await;
    assert_eq!(a.get(&callback).await.status, 303);
}
