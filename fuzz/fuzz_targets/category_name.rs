//! Category field names are always valid Salesforce API names and never taken.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use thena_sf::provision::{categories, schema};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut taken: HashSet<String> = schema::seed_fields().into_iter().map(|f| f.name).collect();
    for part in s.split('\n').take(20) {
        let name = categories::field_name(part, &taken);
        assert!(categories::is_valid(&name), "{name}");
        assert!(!taken.iter().any(|t| t.eq_ignore_ascii_case(&name)), "{name} is taken");
        taken.insert(name);
    }
});
