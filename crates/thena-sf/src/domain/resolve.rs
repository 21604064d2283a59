//! Which Contact and Account a request goes on, for a whole batch at once, in
//! the contract's order: (1) the earlier link while the requestor is unchanged,
//! (2) a Contact with the requestor's email, (3) the Account with the most
//! Contacts at the requestor's company domain, with a new Contact there,
//! (4) an Account named like the customer's workspace, with a Contact of the
//! requestor's name there, (5) skipped, with the reason.
//!
//! No I/O: the [`Resolver`] says which queries to run (one per step for the
//! whole batch) and which Contacts to create; the pipeline runs them and feeds
//! the rows back. Contacts are never duplicated: people are deduplicated
//! within a batch, and the email and name lookups run before any creation, so
//! a Contact created before a crash is found rather than created again.

use super::html::take_utf16;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use salesforce::soql;

use super::mapping::Links;
use super::snapshot::Person;

/// Mail providers whose domains never identify a company.
pub const PUBLIC_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "msn.com",
    "yahoo.com",
    "yahoo.co.uk",
    "ymail.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.*",
    "web.de",
    "mail.com",
    "zoho.com",
    "yandex.ru",
    "yandex.com",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "fastmail.com",
    "hey.com",
    "tutanota.com",
];

/// The public-mail list, with `*` suffix patterns (`gmx.*`).
#[derive(Debug, Clone)]
pub struct PublicDomains {
    exact: HashSet<String>,
    prefixes: Vec<String>,
}

impl PublicDomains {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(list: I) -> PublicDomains {
        let mut exact = HashSet::new();
        let mut prefixes = Vec::new();
        for d in list {
            let d = d.as_ref().trim().to_lowercase();
            match d.strip_suffix('*') {
                Some(p) => prefixes.push(p.to_string()),
                None => {
                    exact.insert(d);
                }
            }
        }
        PublicDomains { exact, prefixes }
    }

    pub fn contains(&self, domain: &str) -> bool {
        let d = domain.to_lowercase();
        self.exact.contains(&d) || self.prefixes.iter().any(|p| d.starts_with(p.as_str()))
    }
}

impl Default for PublicDomains {
    fn default() -> Self {
        PublicDomains::new(PUBLIC_DOMAINS)
    }
}

/// What the resolver needs of one request.
#[derive(Debug, Clone)]
pub struct Request {
    pub request_id: String,
    pub requestor: Option<Person>,
    pub team_name: Option<String>,
    /// The link of an earlier sync, with the requestor it was made for.
    pub previous: Option<(String, Links)>,
    /// Ask Salesforce again, whatever the cache remembers (a retry on demand).
    pub fresh: bool,
}

/// A Contact as the lookups return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub id: String,
    pub account_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    /// For "oldest": Salesforce's CreatedDate (ISO text sorts as time), then the id.
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub name: String,
    pub created: String,
}

/// A Contact to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// The resolver's own key for it (email, or account and name).
    pub key: String,
    pub account_id: String,
    pub first_name: Option<String>,
    pub last_name: String,
    pub email: Option<String>,
}

/// How a request was linked (for the activity log and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Reused,
    /// Found by the requestor's email (asked now, or remembered from an
    /// earlier batch: one wording for one situation).
    ContactByEmail,
    DomainNewContact,
    WorkspaceContact,
    WorkspaceNewContact,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Linked(Links, How),
    Skipped(String),
}

#[derive(Debug, Clone)]
struct Item {
    req: Request,
    email: Option<String>,
    domain: Option<String>,
    outcome: Option<Outcome>,
    /// A Contact found by email that has no Account (kept to avoid a duplicate).
    email_contact: Option<String>,
    /// Waiting for a created Contact: (new-contact key, account, how).
    waiting: Option<(String, String, How)>,
    /// No Contact has the email: asked in this batch, or remembered.
    no_contact: bool,
    tried: Vec<String>,
    /// The outcome came from the cache (not remembered again, so that what
    /// is remembered is asked afresh once its time is up).
    from_cache: bool,
}

impl Item {
    /// Open, and its lookup asks Salesforce (see [`Resolver::asking_ids`]).
    fn asks(&self) -> bool {
        self.outcome.is_none() && self.waiting.is_none() && !self.no_contact
    }
}

/// Whether Salesforce would take `e` as a Contact's Email: at most 80
/// UTF-16 units, one `@` with something before it, and a dotted domain of
/// non-empty labels (`fig@pig` is refused, `fig@pig.c` taken; §9.6, the
/// exact rules are unverified).
pub fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    e.encode_utf16().count() <= 80
        && !local.is_empty()
        && !domain.contains('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
}

/// Splits a name into FirstName and LastName (the last word); no name → the Slack id.
pub fn split_name(p: &Person) -> (Option<String>, String) {
    let name = p.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    match name {
        Some(n) => {
            let words: Vec<&str> = n.split_whitespace().collect();
            // Contact.LastName holds 80 and FirstName 40, counted in UTF-16
            // units (salesforce-api.md §9.6).
            let last = take_utf16(words.last().copied().unwrap_or(n), 80);
            let first =
                (words.len() > 1).then(|| take_utf16(&words[..words.len() - 1].join(" "), 40));
            (first, last)
        }
        None => (
            None,
            p.id.clone()
                .or_else(|| {
                    p.email
                        .as_deref()
                        .and_then(|e| e.split('@').next())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "Unknown".into()),
        ),
    }
}

/// A request's workspace, trimmed and lowercased (the lookup key).
fn team_of(req: &Request) -> Option<String> {
    let t = req.team_name.as_deref()?.trim();
    (!t.is_empty()).then(|| t.to_lowercase())
}

fn full_name(p: &Person) -> String {
    let (f, l) = split_name(p);
    match f {
        Some(f) => format!("{f} {l}"),
        None => l,
    }
}

pub(crate) fn domain_of(email: &str) -> Option<String> {
    let (_, d) = email.rsplit_once('@')?;
    let d = d.trim().trim_end_matches('.').to_lowercase();
    (!d.is_empty() && d.contains('.')).then_some(d)
}

fn older(a: &str, a_id: &str, b: &str, b_id: &str) -> bool {
    (a, a_id) < (b, b_id)
}

/// Per-connection memory of recent answers, bounded in size and age.
#[derive(Debug)]
pub struct Cache {
    map: HashMap<String, (Links, Instant)>,
    accounts: HashMap<String, (String, Instant)>,
    /// Requestors (with their workspace) that matched nothing, and why: remembered
    /// briefly so a burst does not ask again for every version of a request.
    misses: HashMap<String, (String, Instant)>,
    order: VecDeque<String>,
    cap: usize,
    ttl: Duration,
    /// The org answered the domain aggregate with `QUERY_TIMEOUT`: its
    /// Contacts are too many to scan, so domains are searched (SOSL).
    pub search_domains: bool,
    /// Whether the org has person accounts (from Account's describe, once).
    pub person_accounts: Option<bool>,
    /// The org has answered a scan by domain: such scans may ride in a
    /// write (a large org's late refusal would hold the write up).
    pub scans_answered: bool,
}

/// How long a requestor that matched nothing is not asked about again.
pub const MISS_TTL: Duration = Duration::from_secs(15);

fn miss_key(req: &Request) -> String {
    let who = req.requestor.as_ref().map(Person::key).unwrap_or_default();
    let team = req
        .team_name
        .as_deref()
        .map(|t| t.trim().to_lowercase())
        .unwrap_or_default();
    format!("{who}|{team}")
}

impl Cache {
    pub fn new(cap: usize, ttl: Duration) -> Cache {
        Cache {
            misses: HashMap::new(),
            map: HashMap::new(),
            accounts: HashMap::new(),
            order: VecDeque::new(),
            cap,
            ttl,
            search_domains: false,
            person_accounts: None,
            scans_answered: false,
        }
    }

    /// A remembered answer (an Account or Contact id) under `key`: `Some(None)`
    /// when recently there was none.
    fn answer(&self, key: &str, now: Instant) -> Option<Option<String>> {
        if let Some((a, t)) = self.accounts.get(key) {
            if now.duration_since(*t) < self.ttl {
                return Some(Some(a.clone()));
            }
        }
        self.miss(key, now).map(|_| None)
    }

    /// Remembers an answer (for the cache's time), or that there was none
    /// (briefly, as other misses).
    fn remember_answer(&mut self, key: String, id: Option<&str>, now: Instant) {
        match id {
            Some(a) => {
                self.accounts.insert(key.clone(), (a.to_string(), now));
                self.touch(key);
            }
            None => self.remember_miss(key, String::new(), now),
        }
    }

    /// The Account a company domain belongs to, if asked recently:
    /// `Some(None)` when recently it had none.
    pub fn domain(&self, domain: &str, now: Instant) -> Option<Option<String>> {
        self.answer(&format!("d:{domain}"), now)
    }

    /// Remembers a domain's Account, or that it had none.
    pub fn remember_domain(&mut self, domain: &str, account: Option<&str>, now: Instant) {
        self.remember_answer(format!("d:{domain}"), account, now);
    }

    /// The Account named like a workspace, if asked recently.
    pub fn team(&self, team: &str, now: Instant) -> Option<Option<String>> {
        self.answer(&format!("t:{}", team.trim().to_lowercase()), now)
    }

    pub fn remember_team(&mut self, team: &str, account: Option<&str>, now: Instant) {
        self.remember_answer(format!("t:{}", team.trim().to_lowercase()), account, now);
    }

    /// The Contact of a name on an Account (found or created there), if recent.
    pub fn named(&self, account: &str, name: &str, now: Instant) -> Option<String> {
        let key = format!("n:{account}:{}", name.trim().to_lowercase());
        self.answer(&key, now).flatten()
    }

    pub fn remember_named(&mut self, account: &str, name: &str, contact: &str, now: Instant) {
        let key = format!("n:{account}:{}", name.trim().to_lowercase());
        self.remember_answer(key, Some(contact), now);
    }

    /// Forgets everything that points at a Contact or Account that is gone.
    pub fn forget_links(&mut self, links: &Links) {
        let gone = |id: &str| id == links.contact || id == links.account;
        self.map
            .retain(|_, (l, _)| !gone(&l.contact) && !gone(&l.account));
        self.accounts.retain(|_, (id, _)| !gone(id));
    }

    fn touch(&mut self, key: String) {
        self.order.push_back(key);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
                self.accounts.remove(&old);
            }
        }
    }

    /// A known requestor (by email): their Contact and Account.
    pub fn person(&self, email: &str, now: Instant) -> Option<Links> {
        self.map
            .get(&format!("e:{}", email.to_lowercase()))
            .filter(|(_, t)| now.duration_since(*t) < self.ttl)
            .map(|(l, _)| l.clone())
    }

    pub fn remember_person(&mut self, email: &str, links: Links, now: Instant) {
        let k = format!("e:{}", email.to_lowercase());
        self.map.insert(k.clone(), (links, now));
        self.touch(k);
    }

    /// That no Contact has this email, asked recently (briefly, as other
    /// misses): the step after a warm creates the Contact without asking
    /// again. Remembered from the first time, so it is asked afresh in time.
    pub fn remember_no_contact(&mut self, email: &str, now: Instant) {
        self.remember_absent(format!("e:{email}"), now);
    }

    pub fn no_contact(&self, email: &str, now: Instant) -> bool {
        self.miss(&format!("e:{email}"), now).is_some()
    }

    /// That the Account has no Contact of this name, as [`Cache::remember_no_contact`].
    pub fn remember_no_named(&mut self, account: &str, name: &str, now: Instant) {
        self.remember_absent(Self::named_key(account, name), now);
    }

    pub fn no_named(&self, account: &str, name: &str, now: Instant) -> bool {
        self.miss(&Self::named_key(account, name), now).is_some()
    }

    fn named_key(account: &str, name: &str) -> String {
        format!("n:{account}:{}", name.trim().to_lowercase())
    }

    /// A miss with no reason, kept from its first time (not renewed).
    fn remember_absent(&mut self, key: String, now: Instant) {
        if self.miss(&key, now).is_none() {
            self.remember_miss(key, String::new(), now);
        }
    }

    fn miss(&self, key: &str, now: Instant) -> Option<String> {
        self.misses
            .get(key)
            .filter(|(_, t)| now.duration_since(*t) < MISS_TTL)
            .map(|(r, _)| r.clone())
    }

    fn remember_miss(&mut self, key: String, reason: String, now: Instant) {
        if self.misses.len() >= self.cap {
            self.misses
                .retain(|_, (_, t)| now.duration_since(*t) < MISS_TTL);
        }
        if self.misses.len() < self.cap {
            self.misses.insert(key, (reason, now));
        }
    }

    /// Forgets a requestor (their Contact may be gone).
    pub fn forget_person(&mut self, email: &str) {
        self.map.remove(&format!("e:{}", email.to_lowercase()));
    }

    pub fn len(&self) -> usize {
        self.map.len() + self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The filter that keeps person accounts out (`Account.` from Contact),
/// for an org that has them: the field does not exist elsewhere (§9.7).
fn no_person_accounts(path: &str, has_them: bool) -> String {
    if has_them {
        format!(" AND {path}IsPersonAccount = false")
    } else {
        String::new()
    }
}

/// Contacts per Account per domain.
pub type DomainCounts = HashMap<String, HashMap<String, usize>>;

/// Resolves one batch.
pub struct Resolver {
    items: Vec<Item>,
    public: PublicDomains,
    domain_accounts: HashMap<String, String>,
    team_accounts: HashMap<String, String>,
    /// Workspaces (lowercased) the cache says have no Account.
    teams_without: HashSet<String>,
    /// Workspaces a retry on demand asks about afresh.
    fresh_teams: HashSet<String>,
    /// Workspaces asked about in this batch (remembered at the end).
    asked_teams: Vec<String>,
    new_contacts: Vec<NewContact>,
    now: Instant,
}

impl Resolver {
    /// Takes the batch; resolves what the earlier links and the cache already answer.
    pub fn new(
        requests: Vec<Request>,
        public: PublicDomains,
        cache: &Cache,
        now: Instant,
    ) -> Resolver {
        let items = requests
            .into_iter()
            .map(|req| {
                let raw = req
                    .requestor
                    .as_ref()
                    .and_then(|p| p.email.as_deref())
                    .map(|e| e.trim().to_lowercase())
                    .filter(|e| !e.is_empty());
                // An email Salesforce would refuse is no email: the workspace step decides.
                let email = raw.clone().filter(|e| valid_email(e));
                let domain = email.as_deref().and_then(domain_of);
                let mut item = Item {
                    req,
                    email,
                    domain,
                    outcome: None,
                    email_contact: None,
                    waiting: None,
                    no_contact: false,
                    tried: Vec::new(),
                    from_cache: false,
                };
                if let Some(bad) = raw.filter(|e| !valid_email(e)) {
                    let shown: String = bad.chars().take(60).collect();
                    item.tried.push(format!(
                        "the email '{shown}' is not one Salesforce accepts, so it was not used"
                    ));
                }
                if let Some((key, links)) = &item.req.previous {
                    let same = item.req.requestor.as_ref().is_none_or(|p| &p.key() == key);
                    if same {
                        item.outcome = Some(Outcome::Linked(links.clone(), How::Reused));
                    }
                }
                if item.outcome.is_none() && !item.req.fresh {
                    if let Some(l) = item.email.as_deref().and_then(|e| cache.person(e, now)) {
                        item.outcome = Some(Outcome::Linked(l, How::ContactByEmail));
                        item.from_cache = true;
                    } else if let Some(why) = cache.miss(&miss_key(&item.req), now) {
                        item.outcome = Some(Outcome::Skipped(why));
                        item.from_cache = true;
                    } else if let Some(e) =
                        item.email.as_deref().filter(|e| cache.no_contact(e, now))
                    {
                        item.no_contact = true;
                        item.tried.push(format!("no Contact for {e}"));
                    }
                }
                item
            })
            .collect();
        let mut r = Resolver {
            items,
            public,
            domain_accounts: HashMap::new(),
            team_accounts: HashMap::new(),
            teams_without: HashSet::new(),
            fresh_teams: HashSet::new(),
            asked_teams: Vec::new(),
            new_contacts: Vec::new(),
            now,
        };
        r.recall_teams(cache);
        r
    }

    /// What the cache knows of the open requests' workspaces.
    fn recall_teams(&mut self, cache: &Cache) {
        for i in self.items.iter().filter(|i| i.outcome.is_none()) {
            let Some(t) = team_of(&i.req) else { continue };
            if i.req.fresh {
                self.fresh_teams.insert(t);
                continue;
            }
            match cache.team(&t, self.now) {
                Some(Some(a)) => {
                    self.team_accounts.insert(t, a);
                }
                Some(None) => {
                    self.teams_without.insert(t);
                }
                None => {}
            }
        }
    }

    /// Takes out the requests of `may_wait` that the earlier links and the
    /// cache leave open (they need Salesforce): they wait for a later batch.
    /// Unless every request is open: the lookups are made anyway, so all go.
    /// The ids of the requests taken out.
    pub fn leave(&mut self, may_wait: &HashSet<String>) -> Vec<String> {
        if may_wait.is_empty() || self.items.iter().all(Item::asks) {
            return Vec::new();
        }
        let mut left = Vec::new();
        self.items.retain(|i| {
            let stays = !i.asks() || !may_wait.contains(&i.req.request_id);
            if !stays {
                left.push(i.req.request_id.clone());
            }
            stays
        });
        left
    }

    /// The requests whose lookups ask Salesforce: those the earlier links
    /// and the cache leave open, but for an email the cache knows has no
    /// Contact (the later steps' answers are cached with it).
    pub fn asking_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.items
            .iter()
            .filter(|i| i.asks())
            .map(|i| i.req.request_id.clone())
    }

    fn open(&self) -> impl Iterator<Item = &Item> {
        self.items
            .iter()
            .filter(|i| i.outcome.is_none() && i.waiting.is_none())
    }

    fn sorted(set: HashSet<String>) -> Vec<String> {
        let mut v: Vec<String> = set.into_iter().collect();
        v.sort();
        v
    }

    // Asking ahead (sync/ahead.rs): what the later steps may ask, known
    // before the earlier answers are in, so that one composite call carries
    // them all. Each is a superset of what its step will ask.

    /// The company domains of every open request's email.
    pub fn domains_ahead(&self) -> Vec<String> {
        Self::sorted(
            self.open()
                .filter_map(|i| i.domain.clone())
                .filter(|d| !self.public.contains(d))
                .collect(),
        )
    }

    /// The workspaces of every open request, but those the cache says have
    /// no Account (unless asked afresh).
    pub fn teams_ahead(&self) -> Vec<String> {
        let set = self
            .open()
            .filter_map(|i| i.req.team_name.as_deref().map(str::trim))
            .filter(|t| !t.is_empty())
            .filter(|t| {
                let k = t.to_lowercase();
                !self.teams_without.contains(&k) || self.fresh_teams.contains(&k)
            })
            .map(str::to_string)
            .collect();
        Self::sorted(set)
    }

    /// The names of every open request's requestor who has a workspace,
    /// but those the cache knows there (found, or known to be missing).
    pub fn names_ahead(&self, cache: &Cache) -> Vec<String> {
        let known = |i: &Item, name: &str| {
            !i.req.fresh
                && (self.by_known_domain(i, cache)
                    || self.team_account(i).is_some_and(|a| {
                        cache.named(&a, name, self.now).is_some()
                            || cache.no_named(&a, name, self.now)
                    }))
        };
        Self::sorted(
            self.open()
                .filter(|i| team_of(&i.req).is_some())
                .filter_map(|i| i.req.requestor.as_ref().map(|p| (i, full_name(p))))
                .filter(|(i, n)| !known(i, n))
                .map(|(_, n)| n)
                .collect(),
        )
    }

    /// Whether the workspace step will ask about some open request's
    /// workspace: one the cache does not know, of a request the company
    /// domain will not decide.
    pub fn any_team_unknown(&self, cache: &Cache) -> bool {
        self.open()
            .filter(|i| i.req.fresh || !self.by_known_domain(i, cache))
            .filter_map(|i| team_of(&i.req))
            .any(|t| {
                self.fresh_teams.contains(&t)
                    || !(self.team_accounts.contains_key(&t) || self.teams_without.contains(&t))
            })
    }

    /// Whether the company domain the cache knows decides this request (no
    /// Contact has its email, and its domain has an Account): no later step.
    fn by_known_domain(&self, i: &Item, cache: &Cache) -> bool {
        i.no_contact
            && i.domain.as_deref().is_some_and(|d| {
                !self.public.contains(d) && matches!(cache.domain(d, self.now), Some(Some(_)))
            })
    }

    /// Contacts of these names on Accounts named like these workspaces: the
    /// workspace step's Contact lookup, asked before its Accounts are known.
    pub fn contacts_by_team_and_name_soql(teams: &[String], names: &[String]) -> Option<String> {
        let a = soql::in_list("Account.Name", teams)?;
        let n = soql::in_list("Name", names)?;
        Some(format!("SELECT Id, AccountId, Name, CreatedDate FROM Contact WHERE {a} AND {n} ORDER BY CreatedDate, Id"))
    }

    // Step 2: Contacts by email.

    pub fn emails_to_look_up(&self) -> Vec<String> {
        Self::sorted(
            self.open()
                .filter(|i| !i.no_contact)
                .filter_map(|i| i.email.clone())
                .collect(),
        )
    }

    pub fn contacts_by_email_soql(emails: &[String]) -> Option<String> {
        soql::in_list("Email", emails).map(|w| format!("SELECT Id, AccountId, Email, Name, CreatedDate FROM Contact WHERE {w} ORDER BY CreatedDate, Id"))
    }

    pub fn on_contacts_by_email(&mut self, rows: &[ContactRow]) {
        let mut best: HashMap<String, &ContactRow> = HashMap::new();
        for r in rows {
            let Some(e) = r.email.as_deref().map(str::to_lowercase) else {
                continue;
            };
            let better = match best.get(&e) {
                None => true,
                Some(cur) => match (cur.account_id.is_some(), r.account_id.is_some()) {
                    (false, true) => true,
                    (true, false) => false,
                    _ => older(&r.created, &r.id, &cur.created, &cur.id),
                },
            };
            if better {
                best.insert(e, r);
            }
        }
        for i in self
            .items
            .iter_mut()
            .filter(|i| i.outcome.is_none() && i.waiting.is_none() && !i.no_contact)
        {
            let Some(email) = &i.email else { continue };
            match best.get(email) {
                Some(c) => match &c.account_id {
                    Some(a) => {
                        i.outcome = Some(Outcome::Linked(
                            Links {
                                contact: c.id.clone(),
                                account: a.clone(),
                            },
                            How::ContactByEmail,
                        ))
                    }
                    None => {
                        i.email_contact = Some(c.id.clone());
                        i.tried
                            .push(format!("the Contact for {email} has no Account"));
                    }
                },
                None => {
                    i.tried.push(format!("no Contact for {email}"));
                    i.no_contact = true;
                }
            }
        }
    }

    // Step 3: the Account with the most Contacts at the company domain.

    pub fn domains_to_look_up(&mut self) -> Vec<String> {
        let public = &self.public;
        let mut set = HashSet::new();
        for i in self
            .items
            .iter_mut()
            .filter(|i| i.outcome.is_none() && i.waiting.is_none())
        {
            match (&i.domain, &i.email) {
                (Some(d), _) if public.contains(d) => {
                    i.tried.push(format!("{d} is a public mail domain"))
                }
                (Some(d), _) => {
                    set.insert(d.clone());
                }
                (None, None) => i.tried.push("the requestor has no email".into()),
                (None, Some(e)) => i.tried.push(format!("{e} has no domain")),
            }
        }
        Self::sorted(set)
    }

    /// Contacts per Account at a group of domains, counted by Salesforce
    /// (an aggregate: one row per Account however many Contacts match). SOQL
    /// cannot group by an email's domain, so each row also carries its
    /// lowest and highest email: when both are at one domain the row counts
    /// for it (an Account whose matches span two domains of the group shows
    /// two domains and is asked again per domain). A person account is
    /// never a company (salesforce-api.md §9.7).
    pub fn domain_counts_soql(domains: &[String], person_accounts: bool) -> Option<String> {
        if domains.is_empty() {
            return None;
        }
        let person = no_person_accounts("Account.", person_accounts);
        let likes: Vec<String> = domains
            .iter()
            .map(|d| format!("Email LIKE {}", soql::like("%@", d, "")))
            .collect();
        Some(format!(
            "SELECT AccountId, COUNT(Id) n, MIN(Email) lo, MAX(Email) hi FROM Contact WHERE AccountId != null{person} AND ({}) GROUP BY AccountId ORDER BY COUNT(Id) DESC LIMIT 2000",
            likes.join(" OR ")
        ))
    }

    /// The SOSL search that stands in for the aggregate when the org's
    /// Contacts are too many for a scan (`QUERY_TIMEOUT`): Contacts whose
    /// email holds any of the domains; the caller keeps exact matches.
    pub fn domain_search_sosl(domains: &[String], person_accounts: bool) -> Option<String> {
        if domains.is_empty() {
            return None;
        }
        let phrases: Vec<String> = domains.iter().map(|d| soql::sosl_phrase(d)).collect();
        let person = no_person_accounts("Account.", person_accounts);
        Some(format!(
            "FIND {{{}}} IN EMAIL FIELDS RETURNING Contact(Id, AccountId, Email WHERE AccountId != null{person} LIMIT 2000)",
            phrases.join(" OR ")
        ))
    }

    /// Contacts found by email text: counted per domain and Account, exact
    /// domain matches only (a phrase also finds `x@acme.io.example`).
    pub fn count_by_domain(rows: &[ContactRow], domains: &[String]) -> DomainCounts {
        let mut counts: DomainCounts = HashMap::new();
        for r in rows {
            let (Some(a), Some(d)) = (&r.account_id, r.email.as_deref().and_then(domain_of)) else {
                continue;
            };
            if !domains.contains(&d) {
                continue;
            }
            *counts.entry(d).or_default().entry(a.clone()).or_default() += 1;
        }
        counts
    }

    /// The Account each domain belongs to: the most Contacts, ties to the
    /// oldest Account (`created` by Account id; missing sorts last).
    pub fn best_by_domain(
        counts: &DomainCounts,
        created: &HashMap<String, String>,
    ) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for (domain, accounts) in counts {
            let when = |id: &String| created.get(id).cloned().unwrap_or_else(|| "~".into());
            let best = accounts.iter().max_by(|(a_id, a_n), (b_id, b_n)| {
                a_n.cmp(b_n)
                    .then_with(|| (when(b_id), *b_id).cmp(&(when(a_id), *a_id)))
            });
            if let Some((id, _)) = best {
                out.insert(domain.clone(), id.clone());
            }
        }
        out
    }

    /// Accounts that tie for the most Contacts at some domain: their
    /// creation dates decide (one query, only when there is a tie).
    pub fn tied_accounts(counts: &DomainCounts) -> Vec<String> {
        let mut out = HashSet::new();
        for accounts in counts.values() {
            let top = accounts.values().max().copied().unwrap_or(0);
            let tied: Vec<&String> = accounts
                .iter()
                .filter(|(_, n)| **n == top)
                .map(|(a, _)| a)
                .collect();
            if tied.len() > 1 {
                out.extend(tied.into_iter().cloned());
            }
        }
        Self::sorted(out)
    }

    /// Whether a request in this batch was retried by a person (answers
    /// remembered from earlier batches are then asked afresh).
    pub fn any_fresh(&self) -> bool {
        self.items.iter().any(|i| i.req.fresh)
    }

    /// Domains whose Account is known (from Salesforce or remembered); the
    /// open requests at those domains are linked or get a new Contact there.
    pub fn on_domain_accounts(&mut self, found: HashMap<String, String>) {
        self.domain_accounts.extend(found);
        let mut pending: Vec<(usize, String, NewContact)> = Vec::new();
        for (idx, i) in self
            .items
            .iter_mut()
            .enumerate()
            .filter(|(_, i)| i.outcome.is_none() && i.waiting.is_none())
        {
            let Some(d) = i.domain.clone() else { continue };
            if self.public.contains(&d) {
                continue;
            }
            let Some(account) = self.domain_accounts.get(&d).cloned() else {
                i.tried.push(format!("no Account with Contacts at {d}"));
                continue;
            };
            if let Some(c) = &i.email_contact {
                i.outcome = Some(Outcome::Linked(
                    Links {
                        contact: c.clone(),
                        account,
                    },
                    How::ContactByEmail,
                ));
                continue;
            }
            let person = i.req.requestor.clone().unwrap_or(Person {
                id: None,
                name: None,
                email: None,
            });
            let (first, last) = split_name(&person);
            let email = i.email.clone().expect("has a domain, so an email");
            let key = format!("email:{email}");
            pending.push((
                idx,
                key.clone(),
                NewContact {
                    key,
                    account_id: account,
                    first_name: first,
                    last_name: last,
                    email: Some(email),
                },
            ));
        }
        for (idx, key, nc) in pending {
            self.items[idx].waiting =
                Some((key.clone(), nc.account_id.clone(), How::DomainNewContact));
            if !self.new_contacts.iter().any(|c| c.key == key) {
                self.new_contacts.push(nc);
            }
        }
    }

    // Step 4: the customer's workspace name.

    pub fn team_names_to_look_up(&mut self) -> Vec<String> {
        let mut set = HashSet::new();
        for i in self
            .items
            .iter_mut()
            .filter(|i| i.outcome.is_none() && i.waiting.is_none())
        {
            match i
                .req
                .team_name
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                Some(t) => {
                    let k = t.to_lowercase();
                    let known =
                        self.team_accounts.contains_key(&k) || self.teams_without.contains(&k);
                    if !known || self.fresh_teams.contains(&k) {
                        set.insert(t.to_string());
                    }
                }
                None => i
                    .tried
                    .push("the request names no customer workspace".into()),
            }
        }
        let asked = Self::sorted(set);
        self.asked_teams = asked.iter().map(|t| t.to_lowercase()).collect();
        asked
    }

    /// Accounts named like the workspace; never a person account (whose
    /// Name is a person's, §9.7).
    pub fn accounts_by_name_soql(names: &[String], person_accounts: bool) -> Option<String> {
        let person = no_person_accounts("", person_accounts);
        soql::in_list("Name", names).map(|w| {
            format!("SELECT Id, Name, CreatedDate FROM Account WHERE {w}{person} ORDER BY CreatedDate, Id")
        })
    }

    pub fn on_accounts_by_name(&mut self, rows: &[AccountRow]) {
        let mut best: HashMap<String, &AccountRow> = HashMap::new();
        for r in rows {
            let k = r.name.trim().to_lowercase();
            if best
                .get(&k)
                .is_none_or(|cur| older(&r.created, &r.id, &cur.created, &cur.id))
            {
                best.insert(k, r);
            }
        }
        for (k, r) in best {
            self.team_accounts.insert(k, r.id.clone());
        }
        for i in self
            .items
            .iter_mut()
            .filter(|i| i.outcome.is_none() && i.waiting.is_none())
        {
            if let Some(t) = i
                .req
                .team_name
                .as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                if !self.team_accounts.contains_key(&t.to_lowercase()) {
                    i.tried.push(format!("no Account named '{t}'"));
                }
            }
        }
    }

    fn team_account(&self, i: &Item) -> Option<String> {
        self.team_accounts.get(&team_of(&i.req)?).cloned()
    }

    /// Contacts of the requestors' names on the workspace Accounts: (accounts,
    /// names). People the cache knows there are linked without a query.
    pub fn names_to_look_up(&mut self, cache: &Cache) -> (Vec<String>, Vec<String>) {
        let mut accounts = HashSet::new();
        let mut names = HashSet::new();
        for idx in 0..self.items.len() {
            let i = &self.items[idx];
            if i.outcome.is_some() || i.waiting.is_some() {
                continue;
            }
            let (Some(a), Some(p)) = (self.team_account(i), &i.req.requestor) else {
                continue;
            };
            let name = full_name(p);
            if i.email_contact.is_none() && !i.req.fresh {
                if let Some(c) = cache.named(&a, &name, self.now) {
                    let links = Links {
                        contact: c,
                        account: a,
                    };
                    self.items[idx].outcome = Some(Outcome::Linked(links, How::WorkspaceContact));
                    self.items[idx].from_cache = true;
                    continue;
                }
                if cache.no_named(&a, &name, self.now) {
                    continue; // known to have none: made without a query
                }
            }
            accounts.insert(a);
            names.insert(name);
        }
        (Self::sorted(accounts), Self::sorted(names))
    }

    pub fn contacts_by_name_soql(accounts: &[String], names: &[String]) -> Option<String> {
        let a = soql::in_list("AccountId", accounts)?;
        let n = soql::in_list("Name", names)?;
        Some(format!("SELECT Id, AccountId, Name, CreatedDate FROM Contact WHERE {a} AND {n} ORDER BY CreatedDate, Id"))
    }

    pub fn on_contacts_by_name(&mut self, rows: &[ContactRow]) {
        let mut best: HashMap<(String, String), &ContactRow> = HashMap::new();
        for r in rows {
            let (Some(a), Some(n)) = (&r.account_id, &r.name) else {
                continue;
            };
            let k = (a.clone(), n.trim().to_lowercase());
            if best
                .get(&k)
                .is_none_or(|cur| older(&r.created, &r.id, &cur.created, &cur.id))
            {
                best.insert(k, r);
            }
        }
        let mut pending = Vec::new();
        for idx in 0..self.items.len() {
            let i = &self.items[idx];
            if i.outcome.is_some() || i.waiting.is_some() {
                continue;
            }
            let Some(account) = self.team_account(i) else {
                continue;
            };
            let Some(person) = i.req.requestor.clone() else {
                self.items[idx]
                    .tried
                    .push("the request has no requestor".into());
                continue;
            };
            if let Some(c) = self.items[idx].email_contact.clone() {
                self.items[idx].outcome = Some(Outcome::Linked(
                    Links {
                        contact: c,
                        account,
                    },
                    How::WorkspaceContact,
                ));
                continue;
            }
            let name = full_name(&person);
            match best.get(&(account.clone(), name.to_lowercase())) {
                Some(c) => {
                    self.items[idx].outcome = Some(Outcome::Linked(
                        Links {
                            contact: c.id.clone(),
                            account,
                        },
                        How::WorkspaceContact,
                    ))
                }
                None => {
                    let (first, last) = split_name(&person);
                    let key = format!("name:{account}:{}", name.to_lowercase());
                    pending.push((
                        idx,
                        NewContact {
                            key,
                            account_id: account,
                            first_name: first,
                            last_name: last,
                            email: None,
                        },
                    ));
                }
            }
        }
        for (idx, nc) in pending {
            self.items[idx].waiting = Some((
                nc.key.clone(),
                nc.account_id.clone(),
                How::WorkspaceNewContact,
            ));
            if !self.new_contacts.iter().any(|c| c.key == nc.key) {
                self.new_contacts.push(nc);
            }
        }
    }

    /// Contacts to create, one per new person (deduplicated within the batch).
    pub fn contacts_to_create(&self) -> &[NewContact] {
        &self.new_contacts
    }

    /// The results of creating them: key → the new id, or the error.
    pub fn on_created(&mut self, results: &HashMap<String, Result<String, String>>) {
        for i in self.items.iter_mut() {
            let Some((key, account, how)) = i.waiting.take() else {
                continue;
            };
            i.outcome = Some(match results.get(&key) {
                Some(Ok(id)) => Outcome::Linked(
                    Links {
                        contact: id.clone(),
                        account,
                    },
                    how,
                ),
                Some(Err(e)) => Outcome::Skipped(format!("the Contact could not be created: {e}")),
                None => Outcome::Skipped("the Contact was not created".into()),
            });
        }
    }

    /// Every request's outcome as it stands before the new Contacts exist:
    /// a request waiting for one is linked to `placeholder(i)`, `i` its
    /// index in [`Resolver::contacts_to_create`].
    pub fn provisional(&self, placeholder: impl Fn(usize) -> String) -> Vec<(String, Outcome)> {
        self.items
            .iter()
            .map(|i| {
                let outcome = match (&i.outcome, &i.waiting) {
                    (Some(o), _) => o.clone(),
                    (None, Some((key, account, how))) => {
                        let n = self
                            .new_contacts
                            .iter()
                            .position(|c| &c.key == key)
                            .expect("a waiting request's Contact is to be created");
                        let links = Links {
                            contact: placeholder(n),
                            account: account.clone(),
                        };
                        Outcome::Linked(links, *how)
                    }
                    (None, None) => Outcome::Skipped(Self::why_not(&i.tried)),
                };
                (i.req.request_id.clone(), outcome)
            })
            .collect()
    }

    fn why_not(tried: &[String]) -> String {
        let mut why = tried.to_vec();
        why.dedup();
        if why.is_empty() {
            "no Contact or Account matched".into()
        } else {
            why.join(", ")
        }
    }

    /// Every request's outcome; remembers resolved requestors in the cache.
    pub fn finish(self, cache: &mut Cache, now: Instant) -> Vec<(String, Outcome)> {
        for t in &self.asked_teams {
            cache.remember_team(t, self.team_accounts.get(t).map(String::as_str), now);
        }
        self.items
            .into_iter()
            .map(|i| {
                let outcome = i
                    .outcome
                    .unwrap_or_else(|| Outcome::Skipped(Self::why_not(&i.tried)));
                if let (Outcome::Linked(l, _), Some(e), false) = (&outcome, &i.email, i.from_cache)
                {
                    cache.remember_person(e, l.clone(), now);
                } else if let (Some(e), true) = (&i.email, i.no_contact) {
                    cache.remember_no_contact(e, now);
                }
                if let (
                    Outcome::Linked(l, How::WorkspaceContact | How::WorkspaceNewContact),
                    Some(p),
                    false,
                ) = (&outcome, &i.req.requestor, i.from_cache)
                {
                    cache.remember_named(&l.account, &full_name(p), &l.contact, now);
                }
                if let (Some((_, account, How::WorkspaceNewContact)), Some(p)) =
                    (&i.waiting, &i.req.requestor)
                {
                    cache.remember_no_named(account, &full_name(p), now);
                }
                // A requestor that matched nothing (not a failed creation) is not asked about again for a while.
                if let Outcome::Skipped(why) = &outcome {
                    if !i.from_cache && i.waiting.is_none() && !why.starts_with("the Contact") {
                        cache.remember_miss(miss_key(&i.req), why.clone(), now);
                    }
                }
                (i.req.request_id, outcome)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
