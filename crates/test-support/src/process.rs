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

/// Asserts that a finished command succeeded (or failed, when `ok` is false)
/// and that its output says `what`; shows the output when it does not.
pub fn says(o: &Output, ok: bool, what: &str) {
    let t = text(o);
    assert_eq!(o.status.success(), ok, "exit {}: {t}", o.status);
    assert!(t.contains(what), "expected {what:?} in: {t}");
}

/// Runs `command`, panics with its output unless it succeeds, returns it.
pub fn succeed(command: &mut Command) -> Output {
    let out = command.output().expect("the process runs");
    assert!(out.status.success(), "{command:?} failed: {}", text(&out));
    out
}

/// A process that printed its address, killed (and waited for) when dropped.
pub struct Listening {
    pub child: Child,
    pub url: String,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A memory figure of process `pid` from /proc, in MiB: `VmHWM` (peak) or
/// `VmRSS` (now); 0 when it cannot be read.
pub fn proc_mib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) process `pid` has used, from /proc/PID/stat.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are the 14th and 15th fields (11 and 12 here); 100 ticks a second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
