//! The sync: one worker per connection drains its pending snapshots in
//! batches of up to 200 (paced by the arrival rate within the latency
//! budget, `pace`), resolves requestors in bulk (their lookups asked ahead
//! together, `ahead`; those of records that can wait riding in the write
//! before theirs, `ride`), upserts by sObject Collections, and handles every
//! per-record result.

mod ahead;
mod domains;
mod lookup;
mod pace;
mod plan;
mod resolve_io;
mod results;
mod ride;
mod worker;

pub use worker::{Settings, SyncError, Worker, WorkerHandle};
