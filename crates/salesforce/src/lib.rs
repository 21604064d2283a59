//! A small Salesforce client for one connected org: the OAuth web-server flow
//! (PKCE), refresh with rotation, REST (query with paging, create, sObject
//! Collections create and upsert, composite, describe, limits), the Metadata API over
//! SOAP, SOQL escaping, and one error taxonomy that says what to do.
//!
//! No connector logic lives here. Secrets are [`Secret`]s: never in `Debug`,
//! logs or error text.

pub mod client;
pub mod composite;
pub mod error;
mod json;
pub mod metadata;
pub mod oauth;
pub mod secret;
pub mod soql;
pub mod transport;
pub mod types;
pub mod xml;

pub use client::{Client, ClientConfig, TokenSink, COLLECTION_LIMIT};
pub use composite::{SubResult, Subrequest};
pub use error::{Action, ApiError, Error, Result};
pub use oauth::{LoginEnv, OAuthApp, Pkce, TokenSet};
pub use reqwest::Method;
pub use secret::Secret;
pub use transport::Transport;
pub use types::{ApiUsage, Describe, FieldInfo, RecordError, RecordResult};
