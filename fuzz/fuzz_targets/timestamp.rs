//! Timestamp parsing never panics; what it accepts prints and parses back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use thena_sf::domain::time;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Some(t) = time::parse_str(s) {
        let iso = t.iso();
        let again = time::parse_str(&iso).expect("ISO output parses");
        assert_eq!(again.0 / 1000, t.0.div_euclid(1000));
    }
    let _ = time::parse(&serde_json::Value::String(s.to_string()));
    let _ = time::slack_ts(s);
});
