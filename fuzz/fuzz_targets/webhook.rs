//! The webhook parser never panics, and what it accepts round-trips through storage.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = thena_sf::thena::webhook::parse(data) {
        let stored = serde_json::to_string(&event.snapshot).expect("snapshots serialise");
        let back: thena_sf::domain::snapshot::Snapshot = serde_json::from_str(&stored).expect("and read back");
        assert_eq!(back, event.snapshot);
    }
});
