//! The local spool: when the store cannot commit (PostgreSQL down or failing
//! over, a full disk, a lock storm), an authenticated delivery is appended
//! here, fsynced, and acknowledged, instead of being refused: Thena gives up
//! on a delivery after about three minutes (shared/reference/thena-webhook.md),
//! and an event refused past that is lost. The spool is replayed into the
//! store, in arrival order, as soon as the store takes writes again, and at
//! start after a crash. Only when the spool itself cannot write (full, too
//! old, or the disk fails) does the webhook answer 503.
//!
//! One file per process under `<data_dir>/spool/`, held with an exclusive
//! lock; at start a replica also replays the files no live process holds
//! (those of a crashed predecessor). Replaying twice is harmless: each event
//! keeps its delivery key, so the store recognises a repeat as a duplicate.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::ingest::Ingestor;
use crate::store::ingest::IngestItem;

/// How much the spool holds at most.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_bytes: u64,
    /// The spool refuses new events once its oldest one is this old (the
    /// store has been down too long for a spool to be the answer).
    pub max_age: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_bytes: 512 * 1024 * 1024,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    at_ms: i64,
    item: IngestItem,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool cannot write: {0}")]
    Io(#[from] std::io::Error),
    #[error("the spool is full ({0} bytes)")]
    Full(u64),
    #[error("the spool holds events older than {0} s: the store has been down too long")]
    TooOld(u64),
}

struct Own {
    file: File,
    bytes: u64,
    count: u64,
    oldest_ms: Option<i64>,
}

pub struct Spool {
    dir: PathBuf,
    path: PathBuf,
    own: Mutex<Own>,
    bounds: Bounds,
    /// One replay at a time.
    replaying: tokio::sync::Mutex<()>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The records of a spool file, skipping a torn last line (a crash mid-write).
fn read_records(path: &Path, upto: u64) -> std::io::Result<Vec<Record>> {
    let f = File::open(path)?;
    let reader = BufReader::new(f.take(upto));
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line?;
        if let Ok(r) = serde_json::from_str::<Record>(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

impl Spool {
    /// Opens this process's spool file under `<data_dir>/spool/`.
    pub fn open(data_dir: &Path, replica: &str, bounds: Bounds) -> std::io::Result<Spool> {
        let dir = data_dir.join("spool");
        std::fs::create_dir_all(&dir)?;
        let safe: String = replica
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("spool-{safe}.log"));
        let mut opts = OpenOptions::new();
        opts.create(true).read(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(&path)?;
        // Held while this process lives: a file nobody holds is an orphan.
        file.try_lock().map_err(|e| {
            std::io::Error::other(format!(
                "{} is in use by another process: {e}",
                path.display()
            ))
        })?;
        let bytes = file.metadata()?.len();
        let records = read_records(&path, bytes)?;
        let own = Own {
            file,
            bytes,
            count: records.len() as u64,
            oldest_ms: records.first().map(|r| r.at_ms),
        };
        Ok(Spool {
            dir,
            path,
            own: Mutex::new(own),
            bounds,
            replaying: tokio::sync::Mutex::new(()),
        })
    }

    /// Events waiting in this process's spool.
    pub fn len(&self) -> u64 {
        self.own.lock().count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one event and makes it durable (fsync) before returning.
    pub fn append(&self, item: &IngestItem) -> Result<(), SpoolError> {
        let at_ms = now_ms();
        let mut line = serde_json::to_vec(&Record {
            at_ms,
            item: item.clone(),
        })
        .expect("records serialize");
        line.push(b'\n');
        let mut own = self.own.lock();
        if own.bytes + line.len() as u64 > self.bounds.max_bytes {
            return Err(SpoolError::Full(own.bytes));
        }
        if own
            .oldest_ms
            .is_some_and(|o| at_ms - o > self.bounds.max_age.as_millis() as i64)
        {
            return Err(SpoolError::TooOld(self.bounds.max_age.as_secs()));
        }
        own.file.write_all(&line)?;
        own.file.sync_data()?;
        own.bytes += line.len() as u64;
        own.count += 1;
        own.oldest_ms.get_or_insert(at_ms);
        Ok(())
    }

    /// Replays the spool (and any orphaned one) into the store, in arrival
    /// order; stops at the first event the store cannot take. Returns how
    /// many were replayed.
    pub async fn replay(&self, ingestor: &Ingestor) -> Result<u64, String> {
        let _one = self.replaying.lock().await;
        let mut done = self.replay_orphans(ingestor).await?;
        let upto = self.own.lock().bytes;
        if upto == 0 {
            return Ok(done);
        }
        let records = read_records(&self.path, upto).map_err(|e| e.to_string())?;
        for r in records {
            ingestor.submit(Arc::new(r.item)).await?;
            done += 1;
        }
        self.drop_prefix(upto).map_err(|e| e.to_string())?;
        Ok(done)
    }

    /// Removes the first `upto` bytes (replayed); keeps what was appended since.
    fn drop_prefix(&self, upto: u64) -> std::io::Result<()> {
        let mut own = self.own.lock();
        let mut rest = Vec::new();
        own.file.seek(SeekFrom::Start(upto))?;
        own.file.read_to_end(&mut rest)?;
        own.file.set_len(0)?;
        own.file.write_all(&rest)?;
        own.file.sync_data()?;
        own.bytes = rest.len() as u64;
        let remaining = read_records(&self.path, own.bytes)?;
        own.count = remaining.len() as u64;
        own.oldest_ms = remaining.first().map(|r| r.at_ms);
        Ok(())
    }

    /// Spool files of processes that are gone (nobody holds their lock).
    async fn replay_orphans(&self, ingestor: &Ingestor) -> Result<u64, String> {
        let mut done = 0;
        let entries = std::fs::read_dir(&self.dir).map_err(|e| e.to_string())?;
        for e in entries.flatten() {
            let path = e.path();
            let is_log = path.extension().is_some_and(|x| x == "log");
            if path == self.path || !is_log {
                continue;
            }
            let Ok(f) = OpenOptions::new().read(true).write(true).open(&path) else {
                continue;
            };
            if f.try_lock().is_err() {
                continue; // a live replica's
            }
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let records = read_records(&path, len).map_err(|e| e.to_string())?;
            for r in records {
                ingestor.submit(Arc::new(r.item)).await?;
                done += 1;
            }
            let _ = std::fs::remove_file(&path);
            tracing::info!(file = %path.display(), events = done, "replayed a spool left by a process that stopped");
        }
        Ok(done)
    }
}
