//! No unescaped markup gets out of the mrkdwn renderer, before or after a cut.
#![no_main]
use libfuzzer_sys::fuzz_target;
use thena_sf::domain::{html, mrkdwn};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let out = mrkdwn::render(text, &Default::default());
    assert!(mrkdwn::only_allowed_tags(&out), "{out}");
    let max = 16 + data.len() % 200;
    let cut = html::cut_html(&out, max);
    assert!(mrkdwn::only_allowed_tags(&cut), "{cut}");
    assert!(cut.chars().count() <= max.max(out.chars().count().min(max)));
});
