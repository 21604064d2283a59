//! Processes that print `... listening on <url>` as their first line (the
//! connector's `serve` and `demo`, the emulator's binary).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};

/// Spawns `command` with stdout piped and returns it with the URL its first
/// line names; the rest of stdout is drained so the process never blocks.
pub fn spawn_listening(command: &mut Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("the process starts");
    let url = listening_url(&mut child);
    (child, url)
}

/// Reads the first line of `child`'s piped stdout, which must say
/// `listening on <url>`, and returns the URL (without a trailing `/`).
pub fn listening_url(child: &mut Child) -> String {
    let line = first_line(child);
    assert!(line.contains("listening on"), "first line: {line:?}");
    url_in(&line)
}

/// The first line of `child`'s piped stdout; the rest is drained on a
/// thread of its own, so the process never blocks on a full pipe.
pub fn first_line(child: &mut Child) -> String {
    let mut out = BufReader::new(child.stdout.take().expect("stdout piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("a first line");
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    line
}

/// The last word of `line`, a URL, without a trailing `/`.
pub fn url_in(line: &str) -> String {
    line.trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}

/// stdout then stderr of a finished command, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `command`, panics with its output unless it succeeds, returns it.
pub fn succeed(command: &mut Command) -> Output {
    let out = command.output().expect("the process runs");
    assert!(out.status.success(), "{command:?} failed: {}", text(&out));
    out
}
