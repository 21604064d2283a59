//! The element tree the emulator reads SOAP requests and keeps metadata in:
//! the `xml-tree` crate, shared with the Salesforce client.

pub use xml_tree::*;
