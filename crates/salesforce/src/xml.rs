//! The element tree SOAP answers are read with: the `xml-tree` crate,
//! shared with the emulator.

pub use xml_tree::*;
