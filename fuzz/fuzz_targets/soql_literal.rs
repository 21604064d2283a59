//! SOQL literals escaped by the client parse back, in the emulator's parser, to exactly the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sf_emulator::soql::ast::{Cond, Literal};
use sf_emulator::soql::literal;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let q = format!("SELECT Id FROM Contact WHERE Name = {}", salesforce::soql::quote(s));
    let parsed = sf_emulator::soql::parse(&q).expect("an escaped literal always parses");
    let Some(Cond::Cmp { value: Literal::Str { raw, .. }, .. }) = parsed.filter else { panic!("{q}") };
    assert_eq!(literal::decode(&raw).expect("decodes"), s);
    let q = format!("SELECT Id FROM Contact WHERE Name LIKE {}", salesforce::soql::like("", s, ""));
    let parsed = sf_emulator::soql::parse(&q).expect("an escaped pattern always parses");
    let Some(Cond::Like { raw, .. }) = parsed.filter else { panic!("{q}") };
    assert!(literal::like_matches(&literal::decode_like(&raw).expect("decodes"), s));
});
