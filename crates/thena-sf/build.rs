//! Records the git commit the binary is built from, for `thena-sf --version`.
//! `THENA_SF_GIT_COMMIT` overrides it (a container build has no `.git`).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=THENA_SF_GIT_COMMIT");
    let commit = std::env::var("THENA_SF_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself, the branch it points at, packed refs.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let dir = Path::new(&dir);
        // `refs/heads` as a folder: a commit on a packed branch writes a new
        // file there.
        let mut watch = vec![
            dir.join("HEAD"),
            dir.join("packed-refs"),
            dir.join("refs/heads"),
        ];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(dir.join(branch));
        }
        // Only files that exist: Cargo takes a missing one as changed on
        // every build (a clone without packed-refs rebuilt this crate each time).
        for path in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rustc-env=THENA_SF_COMMIT={commit}");
}
