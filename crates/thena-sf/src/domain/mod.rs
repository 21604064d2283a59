//! Domain rules, with no I/O: the snapshot model and its coalescing, time
//! parsing, the field mapping with the mrkdwn renderer and length cuts, and
//! requestor resolution (which decides the queries; the pipeline runs them).

pub mod comments;
pub mod html;
pub mod mapping;
pub mod mrkdwn;
pub mod resolve;
pub mod snapshot;
pub mod time;
