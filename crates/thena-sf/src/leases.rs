//! The lease loop: how a replica decides which connections it drains.
//!
//! Every tick (a fifth of the lease's lifetime) a replica: beats its heart;
//! renews its leases and stops the worker of any it lost; learns connections
//! made on other replicas (and forgets deleted ones); takes free or expired
//! leases up to its fair share (connections ÷ live replicas, rounded up);
//! gives back what it holds beyond that share once its worker has finished the
//! batch in flight. On PostgreSQL a listener turns `NOTIFY thena_sf_wake`
//! (sent by whichever replica ingested an event) into a wake-up of the
//! connection's worker here. With SQLite there is one replica, which holds
//! every lease.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::runtime::auth_of;
use crate::runtime::AppState;
use crate::store::{Backend, StoreError};

type App = Arc<AppState>;

/// A name for this process: `THENA_SF_REPLICA_ID` when set (a stable name, such
/// as a StatefulSet pod's, lets a restarted replica resume its leases at once;
/// it must be unique among live replicas), else one unique per start.
pub fn replica_id(configured: Option<&str>) -> String {
    if let Some(id) = configured.filter(|v| !v.trim().is_empty()) {
        return id.trim().to_string();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

fn ttl_ms(app: &App) -> i64 {
    (app.config.lease_ttl_secs.max(1) * 1000) as i64
}

fn spread(replica: &str, connection: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (replica, connection).hash(&mut h);
    h.finish()
}

/// Runs rounds until shutdown.
pub async fn run(app: App) {
    let tick = Duration::from_millis((ttl_ms(&app) / 5).max(100) as u64);
    let mut shutdown = app.runtime.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = app.runtime.lease_wake.notified() => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
        round(&app).await;
    }
}

/// One round; a failing store is logged and tried again next tick.
pub async fn round(app: &App) {
    if let Err(e) = try_round(app).await {
        warn!(error = %e, "the lease round failed");
    }
}

/// One round, failing on a store error (the first round, at start).
pub async fn try_round(app: &App) -> Result<(), StoreError> {
    let store = &app.store;
    let ttl = ttl_ms(app);
    let live = store.heartbeat(ttl).await?;
    let held = store.renew_leases(ttl).await?;
    let conns = store.connections().await?;
    let names: Vec<String> = conns.iter().map(|c| c.name.clone()).collect();

    // Workers whose lease is gone (expired while this replica stalled, or taken over).
    let running: Vec<String> = app.workers.read().keys().cloned().collect();
    for name in running {
        if !held.contains_key(&name) {
            warn!(connection = %name, "lost the lease; stopping its worker");
            store.mark_lost(&name);
            give_back(app, &name, false);
        }
    }
    // Connections made elsewhere become known here, and a webhook token or signing
    // secret changed elsewhere takes effect here; deleted ones are forgotten.
    let known: Vec<String> = app.conns.read().keys().cloned().collect();
    for c in &conns {
        app.conns.write().insert(c.name.clone(), auth_of(c));
    }
    for name in known.iter().filter(|n| !names.contains(n)) {
        app.remove_connection(name);
        let _ = store.release_lease(name).await;
    }

    // Leases held under this replica's name that this process never took: an
    // earlier run of the same (stable-named) replica. Adopt them with a new epoch,
    // which fences out anything that earlier run might still try to acknowledge.
    let local = store.held();
    for name in held.keys().filter(|n| !local.contains_key(*n)) {
        if !app.runtime.stopping.lock().contains(name) && store.adopt_lease(name).await?.is_some() {
            info!(connection = %name, "resumed the lease of an earlier run");
        }
    }
    let stopping = app.runtime.stopping.lock().clone();
    let mut mine: Vec<String> = names
        .iter()
        .filter(|n| held.contains_key(*n) && !stopping.contains(*n))
        .cloned()
        .collect();
    let fair = (names.len() as i64 + live - 1) / live.max(1);
    if (mine.len() as i64) < fair {
        let replica = store.replica();
        let mut candidates: Vec<&String> = names
            .iter()
            .filter(|n| !held.contains_key(*n) && !stopping.contains(*n))
            .collect();
        candidates.sort_by_key(|n| spread(&replica, n));
        for name in candidates {
            if mine.len() as i64 >= fair {
                break;
            }
            if store.try_acquire(name, ttl).await?.is_some() {
                info!(connection = %name, "took the lease");
                mine.push(name.clone());
            }
        }
    } else if mine.len() as i64 > fair && live > 1 {
        // More than a fair share while others are alive: give the rest back.
        mine.sort();
        for name in mine.split_off(fair as usize) {
            info!(connection = %name, "giving the lease back to balance replicas");
            give_back(app, &name, true);
        }
    }
    for c in conns.iter().filter(|c| mine.contains(&c.name)) {
        if !app.workers.read().contains_key(&c.name) {
            app.start_worker(c);
        }
    }
    Ok(())
}

/// Stops a worker; once its batch in flight is done, releases the lease (when
/// still held) so that another replica can take it at once.
fn give_back(app: &App, name: &str, release: bool) {
    if !app.runtime.stopping.lock().insert(name.to_string()) {
        return;
    }
    let task = app.stop_worker(name);
    let (app, name) = (app.clone(), name.to_string());
    tokio::spawn(async move {
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
        if release {
            if let Err(e) = app.store.release_lease(&name).await {
                warn!(connection = %name, error = %e, "cannot release the lease");
            }
        } else {
            app.store.forget_lease(&name);
        }
        app.runtime.stopping.lock().remove(&name);
    });
}

/// On PostgreSQL: wakes local workers when any replica ingests for their connection.
pub fn listen(app: App) -> Option<tokio::task::JoinHandle<()>> {
    if app.store.backend() != Backend::Postgres {
        return None;
    }
    let url = app.store.url().to_string();
    Some(tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut l) => {
                    if let Err(e) = l.listen("thena_sf_wake").await {
                        warn!(error = %e, "cannot LISTEN for wake-ups");
                    } else {
                        // Anything sent while not listening: look at every queue once.
                        let names: Vec<String> = app.workers.read().keys().cloned().collect();
                        for n in names {
                            app.wake(&n);
                        }
                        loop {
                            match l.recv().await {
                                Ok(n) => app.wake(n.payload()),
                                Err(e) => {
                                    warn!(error = %e, "the wake-up listener dropped");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot connect the wake-up listener"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}
