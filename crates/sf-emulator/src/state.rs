//! The emulator's shared state: the org, the auth store, API accounting,
//! faults, call statistics and open query cursors.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::{AuthStore, Credential};
use crate::config::{ConnectedApp, EmulatorConfig};
use crate::dml::Caller;
use crate::faults::Faults;
use crate::org::{Bootstrap, Org};
use crate::security::{self, FieldAccess};
use crate::usage::ApiUsage;
use crate::value::Val;

/// Query results not yet fetched, by locator.
#[derive(Default)]
pub struct Cursors {
    next: u64,
    /// Locator -> (records already sent in the first batch, the records after them).
    open: HashMap<String, (usize, Vec<Value>)>,
    order: VecDeque<String>,
}

const MAX_CURSORS: usize = 500;

impl Cursors {
    /// Keeps the records after the first batch and returns the cursor's locator.
    pub fn open(&mut self, first_batch: usize, rest: Vec<Value>) -> String {
        self.next += 1;
        let locator = crate::ids::to_18(&format!("01gEm{:010}", self.next));
        self.open.insert(locator.clone(), (first_batch, rest));
        self.order.push_back(locator.clone());
        while self.order.len() > MAX_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.open.remove(&old);
            }
        }
        locator
    }

    /// Takes up to `n` records starting at position `pos` of the whole result
    /// (as `nextRecordsUrl` counts). Returns the page, the result's total size
    /// and whether it is drained (the cursor then closes).
    pub fn take(
        &mut self,
        locator: &str,
        pos: usize,
        n: usize,
    ) -> Option<(Vec<Value>, usize, bool)> {
        let (first, rest) = self.open.get(locator)?;
        let from = pos.checked_sub(*first)?;
        if from > rest.len() {
            return None;
        }
        let end = (from + n).min(rest.len());
        let page = rest[from..end].to_vec();
        let total = first + rest.len();
        let done = end >= rest.len();
        if done {
            self.open.remove(locator);
            self.order.retain(|l| l != locator);
        }
        Some((page, total, done))
    }
}

/// Adds a seeded layout (a copy of the object's default layout under a new
/// name) and assigns it to its profiles, creating those that do not exist.
fn seed_layout(org: &mut Org, l: &crate::config::SeedLayout) -> Result<(), String> {
    let object = org
        .table(&l.object)
        .map(|t| t.def.name.clone())
        .ok_or_else(|| format!("seed layout {}: no object {}", l.name, l.object))?;
    let full_name = format!("{object}-{}", l.name);
    let default = org
        .layouts
        .get(&format!("{object}-{object} Layout").to_lowercase())
        .cloned()
        .unwrap_or_default();
    org.layouts.insert(
        full_name.to_lowercase(),
        crate::org::Layout {
            full_name: full_name.clone(),
            body_xml: default.body_xml.replace(
                &format!("<label>{object} Information</label>"),
                &format!("<label>{} Information</label>", l.name),
            ),
            related_lists: default.related_lists,
            managed: l.managed,
        },
    );
    for p in &l.profiles {
        let pid = match org.profile_by_name(p) {
            Some(id) => id,
            None => org.create_profile(p),
        };
        org.layout_assignments
            .entry(pid.to_ascii_lowercase())
            .or_default()
            .insert(object.to_ascii_lowercase(), full_name.clone());
    }
    Ok(())
}

/// One record written by a Collections upsert (see [`Emulator::journal`]).
#[derive(Debug, Clone)]
pub struct Written {
    pub at: Instant,
    pub object: String,
    /// The external id's value.
    pub key: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Everything saved by `--state FILE`.
#[derive(Serialize, Deserialize)]
struct Persisted {
    org: Org,
    bootstrap: Bootstrap,
    auth: AuthStore,
}

pub struct Emulator {
    pub config: EmulatorConfig,
    pub org: RwLock<Org>,
    pub bootstrap: RwLock<Bootstrap>,
    pub auth: Mutex<AuthStore>,
    pub usage: Mutex<ApiUsage>,
    pub faults: Mutex<Faults>,
    pub stats: Mutex<BTreeMap<String, u64>>,
    /// Every record written by a Collections upsert, with when, while
    /// `Some` (benchmarks turn it on to time acknowledgement → written).
    pub journal: Mutex<Option<Vec<Written>>>,
    pub cursors: Mutex<Cursors>,
    access_cache: Mutex<HashMap<String, (u64, Arc<FieldAccess>)>>,
    /// `http(s)://host:port` once the listener is bound.
    pub base_url: OnceLock<String>,
    pub started: Instant,
    /// The seed, serialised, to apply again on reset.
    seed_json: Vec<u8>,
    /// Org-wide settings from the seed.
    pub settings: crate::config::OrgSettings,
}

impl Emulator {
    /// Builds the emulator's state from its configuration: loads `--state` if
    /// the file exists, otherwise makes a new org from the seed.
    pub fn new(mut config: EmulatorConfig) -> Result<Emulator, String> {
        // The seed can be large (a million contacts): keep it only as compact
        // JSON for `reset`, not as parsed maps for the life of the process.
        let seed = std::mem::take(&mut config.seed);
        let seed_json = serde_json::to_vec(&seed).map_err(|e| e.to_string())?;
        let mut apps = seed.connected_apps.clone();
        if apps.is_empty() {
            apps.push(ConnectedApp::default_app());
        }
        let (org, bootstrap, mut auth) = match config.state_file.as_ref().filter(|p| p.exists()) {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read state file {}: {e}", path.display()))?;
                let mut p: Persisted = serde_json::from_str(&text)
                    .map_err(|e| format!("invalid state file {}: {e}", path.display()))?;
                p.org.after_load();
                (p.org, p.bootstrap, p.auth)
            }
            None => {
                let (org, bootstrap) = Org::new();
                (org, bootstrap, AuthStore::default())
            }
        };
        auth.apps = apps;
        auth.token_ttl = config.token_ttl;
        let em = Emulator {
            usage: Mutex::new(ApiUsage::new(config.daily_api_limit)),
            faults: Mutex::new(Faults::new(config.faults.clone())),
            org: RwLock::new(org),
            bootstrap: RwLock::new(bootstrap),
            auth: Mutex::new(auth),
            stats: Mutex::new(BTreeMap::new()),
            journal: Mutex::new(None),
            cursors: Mutex::new(Cursors::default()),
            access_cache: Mutex::new(HashMap::new()),
            base_url: OnceLock::new(),
            started: Instant::now(),
            config,
            seed_json,
            settings: seed.org.clone(),
        };
        if em.auth.lock().credentials.is_empty() {
            em.apply_seed(&seed)?;
        }
        Ok(em)
    }

    /// Creates the seed's users and records in the current org.
    fn apply_seed(&self, seed: &crate::config::Seed) -> Result<(), String> {
        let mut users = seed.users.clone();
        if users.is_empty() {
            users.push(crate::config::SeedUser {
                username: crate::config::DEFAULT_USERNAME.into(),
                password: crate::config::DEFAULT_PASSWORD.into(),
                first_name: Some("Emulator".into()),
                last_name: "Admin".into(),
                email: Some(crate::config::DEFAULT_USERNAME.into()),
                profile: "System Administrator".into(),
            });
        }
        let mut org = self.org.write();
        let boot = self.bootstrap.read().clone();
        for l in &seed.layouts {
            seed_layout(&mut org, l)?;
        }
        let mut creds = Vec::new();
        for u in &users {
            let profile = match u.profile.as_str() {
                "System Administrator" | "Admin" => boot.admin_profile_id.clone(),
                "Standard User" | "Standard" => boot.standard_profile_id.clone(),
                other => org.profile_by_name(other).ok_or_else(|| {
                    format!(
                        "seed user {}: unknown profile '{other}' (name it in a seeded layout's profiles to create it)",
                        u.username
                    )
                })?,
            };
            let mut values = vec![
                ("Username", Val::text(u.username.as_str())),
                ("LastName", Val::text(u.last_name.as_str())),
                (
                    "Email",
                    Val::text(u.email.clone().unwrap_or_else(|| u.username.clone())),
                ),
                ("IsActive", Val::Bool(true)),
                ("ProfileId", Val::text(profile.as_str())),
            ];
            if let Some(f) = &u.first_name {
                values.push(("FirstName", Val::text(f.as_str())));
            }
            let user_id = org.insert_system("User", &values);
            creds.push(Credential {
                username: u.username.clone(),
                password: u.password.clone(),
                user_id,
            });
        }
        let admin = creds[0].user_id.clone();
        let access = FieldAccess::default();
        // Seeds are loaded as a data import would be, past the duplicate rules.
        let caller = Caller {
            user_id: &admin,
            access: &access,
            allow_save: true,
        };
        if seed.org.person_accounts
            && org
                .table("Account")
                .is_some_and(|t| t.def.slot("IsPersonAccount").is_none())
        {
            crate::person::enable(&mut org);
        }
        if !seed.person_accounts.is_empty() && !seed.org.person_accounts {
            return Err("seed person_accounts need \"org\": {\"person_accounts\": true}".into());
        }
        for p in &seed.person_accounts {
            crate::person::seed(&mut org, p)?;
        }
        let mut account_ids: HashMap<String, String> = HashMap::new();
        for a in &seed.accounts {
            let id = org
                .create("Account", a, &caller)
                .map_err(|e| format!("seed account {a:?}: {}", e.message))?;
            if let Some(name) = a.get("Name").and_then(Value::as_str) {
                account_ids.insert(name.to_lowercase(), id);
            }
        }
        for c in &seed.contacts {
            let mut body: Map<String, Value> = c.clone();
            if let Some(name) = body.remove("AccountName") {
                let name = name.as_str().unwrap_or_default().to_lowercase();
                let id = account_ids.get(&name).ok_or_else(|| {
                    format!("seed contact {c:?}: no seeded account named '{name}'")
                })?;
                body.insert("AccountId".into(), Value::String(id.clone()));
            }
            org.create("Contact", &body, &caller)
                .map_err(|e| format!("seed contact {c:?}: {}", e.message))?;
        }
        for l in &seed.leads {
            org.create("Lead", l, &caller)
                .map_err(|e| format!("seed lead {l:?}: {}", e.message))?;
        }
        org.duplicate_rules = seed.duplicate_rules;
        self.auth.lock().credentials = creds;
        Ok(())
    }

    /// The profile name of a user, for app policies.
    pub fn profile_name_of(&self, user_id: &str) -> Option<String> {
        let org = self.org.read();
        let user = org.table("User")?.get(user_id)?;
        let pid = org
            .get_field("User", user, "ProfileId")?
            .as_str()?
            .to_string();
        let profile = org.table("Profile")?.get(&pid)?;
        org.get_field("Profile", profile, "Name")?
            .as_str()
            .map(str::to_string)
    }

    /// The users who can log in, in the seed's order.
    fn user_ids(&self) -> Vec<String> {
        let auth = self.auth.lock();
        auth.credentials.iter().map(|c| c.user_id.clone()).collect()
    }

    /// Empties the org back to a new one with the seed applied; tokens stay valid.
    pub fn reset(&self) -> Result<(), String> {
        let (org, bootstrap) = Org::reset();
        *self.org.write() = org;
        *self.bootstrap.write() = bootstrap;
        self.access_cache.lock().clear();
        let old_ids = self.user_ids();
        self.auth.lock().credentials.clear();
        let seed: crate::config::Seed =
            serde_json::from_slice(&self.seed_json).map_err(|e| e.to_string())?;
        self.apply_seed(&seed)?;
        // Sessions of the old admin keep working: map them onto the new users by position.
        let new_ids = self.user_ids();
        let mut auth = self.auth.lock();
        auth.remap_users(&old_ids, &new_ids);
        Ok(())
    }

    /// Field access of a user, recomputed only when permissions changed.
    pub fn access_for(&self, org: &Org, user_id: &str) -> Arc<FieldAccess> {
        let mut cache = self.access_cache.lock();
        if let Some((gen, a)) = cache.get(user_id) {
            if *gen == org.perm_generation {
                return a.clone();
            }
        }
        let a = Arc::new(security::field_access(org, user_id));
        cache.insert(user_id.to_string(), (org.perm_generation, a.clone()));
        a
    }

    pub fn count(&self, kind: &str) {
        *self.stats.lock().entry(kind.to_string()).or_default() += 1;
    }

    pub fn base_url(&self) -> String {
        self.base_url.get().cloned().unwrap_or_default()
    }

    /// Writes the org and tokens to the `--state` file, if one is configured.
    pub fn save_state(&self) -> Result<(), String> {
        let Some(path) = &self.config.state_file else {
            return Ok(());
        };
        let p = Persisted {
            org: self.org.read().clone(),
            bootstrap: self.bootstrap.read().clone(),
            auth: self.auth.lock().clone(),
        };
        let text = serde_json::to_string(&p).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}
