//! The Thena → Salesforce connector.
//!
//! # Layout
//! - [`config`]: the TOML file and `THENA_SF_*` variables, parsed once.
//! - [`store`]: connections (secrets sealed by [`crypto`]) and queues, SQLite by default.
//! - [`connect`]: storing a connection from OAuth tokens and setting the org up.
//! - [`provision`]: the `Request__c` object, fields, access and layout; the doctor.
//!
//! The Salesforce wire format lives in the `salesforce` crate; this crate
//! never builds a Salesforce URL or SOQL string by hand except through it.

pub mod app;
pub mod config;
pub mod connect;
pub mod crypto;
#[cfg(feature = "demo")]
pub mod demo;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod leases;
pub mod metrics;
pub mod operations;
pub mod provision;
pub mod runtime;
pub mod spool;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod thena;
pub mod web;

/// Errors of the connector's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Salesforce(#[from] salesforce::Error),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error("{0}")]
    Invalid(String),
}
