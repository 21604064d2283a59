//! What the workspace's tests and benchmarks share, so that each of them says
//! only what it checks: a temporary folder that cleans up after itself
//! ([`TempDir`]), the emulator and its admin login ([`emulator`]), a process
//! that prints its address on its first line ([`process`]), and the
//! connector's command line ([`connector`], [`cli!`]), and a request's body
//! read in one step ([`Fetch`]). With the `app` feature (the connector's own
//! tests and benchmarks): the connector in-process over a fresh store
//! ([`app`]) and temporary PostgreSQL databases ([`pg`]).
//!
//! A dev-dependency of every crate in the workspace; it depends on the
//! emulator and the Salesforce client (libraries, never on a test's own
//! crate's test build), so integration tests and benchmarks share one copy.

#[cfg(feature = "app")]
pub mod app;
pub mod connector;
mod dir;
pub mod emulator;
mod fetch;
#[cfg(feature = "app")]
pub mod pg;
pub mod process;

pub use dir::TempDir;
pub use fetch::{post_webhook, status_for_length, Fetch};
