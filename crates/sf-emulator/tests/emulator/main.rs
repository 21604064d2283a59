//! The emulator, black box: its REST, SOAP and Metadata APIs on port 0
//! ([`api`]), OAuth ([`oauth`]), the binary's command line ([`binary`]), and
//! real Salesforce clients judging it ([`conformance`]). One test binary.

mod api;
mod binary;
mod common;
mod conformance;
mod oauth;
