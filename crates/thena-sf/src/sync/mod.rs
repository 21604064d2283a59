//! The sync: one worker per connection drains its pending snapshots in
//! batches of up to 200 (after a short linger), resolves requestors in bulk,
//! upserts by sObject Collections, and handles every per-record result.

mod domains;
mod resolve_io;
mod worker;

pub use worker::{Settings, Worker, WorkerHandle};
