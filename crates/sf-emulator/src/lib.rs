#![recursion_limit = "256"]
// Handlers return `Result<_, Response>` to answer early with a ready response,
// the usual axum style; boxing every response would only add noise.
#![allow(clippy::result_large_err)]
//! A local Salesforce API emulator: OAuth 2.0, the REST API (sObjects,
//! external-id upsert, sObject Collections, SOQL with paging, describe,
//! limits) and the Metadata API over SOAP, with field-level security, API
//! accounting and fault injection.
//!
//! # Layout
//! - [`server`]: binds, serves HTTP or HTTPS, shuts down; [`routes`]: the URL
//!   map and the gate (latency, faults, auth, limits) every API call passes.
//! - [`oauth`] over [`auth`]: authorize page, token grants, revoke, identity.
//! - [`rest`]: the REST API; [`metadata`]: the Metadata API (SOAP).
//! - [`org`], [`table`], [`schema`], [`dml`], [`security`]: the org's data,
//!   its schema, validated writes and field-level security.
//! - [`soql`]: parser and evaluator. [`usage`], [`faults`]: accounting and fault injection.
//!
//! Start one in-process with [`start`] (port 0 picks a free port).

pub mod admin;
pub mod auth;
pub mod config;
pub mod dml;
pub mod duplicates;
pub mod faults;
pub mod http;
pub mod ids;
pub mod metadata;
pub mod oauth;
pub mod org;
pub mod person;
pub mod record_page;
pub mod rest;
pub mod routes;
pub mod schema;
pub mod security;
pub mod server;
pub mod soql;
pub mod state;
pub mod table;
pub mod usage;
pub mod value;

pub use config::{
    ConnectedApp, EmulatorConfig, Seed, SeedUser, DEFAULT_PASSWORD, DEFAULT_USERNAME,
};
pub use faults::FaultSpec;
pub use server::{start, start_on, Running, StartError};
pub use state::Emulator;
