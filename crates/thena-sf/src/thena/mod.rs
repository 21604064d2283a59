//! Thena's wire formats, parsed once into domain types: the request webhook
//! and the platform's ticket events (one route; the body's shape tells them apart).

pub mod json;
pub mod platform;
pub mod webhook;
