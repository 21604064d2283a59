//! The client against the emulator over real HTTP ([`client`]), and SOQL
//! escaping checked by the emulator's parser ([`soql_escaping`]). One test
//! binary.

mod client;
mod soql_escaping;
