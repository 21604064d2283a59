//! Thena's wire format: the request webhook, parsed once into domain types.

pub mod webhook;
