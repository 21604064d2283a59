#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS_PER_TARGET seconds each (default 10;
# CI runs it briefly; run longer on demand: SECONDS_PER_TARGET=600 scripts/fuzz.sh).
# A crash found by a target fails. Without a nightly toolchain, or when
# cargo-fuzz cannot be installed, it says so and skips: the same properties run
# as proptest cases in the ordinary test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_PER_TARGET:-10}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: SKIPPED, no nightly toolchain on this machine (the property tests cover the same functions)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz 0.12.0" >&2
  if ! cargo install cargo-fuzz --version 0.12.0 --locked --quiet; then
    echo "fuzz: SKIPPED, cargo-fuzz could not be installed"
    exit 0
  fi
fi
# The fuzz build (every dependency, instrumented, in release) takes a quarter
# of an hour from cold: keep it outside the clone, so that a later run on the
# same machine (CI's fresh clone included) rebuilds only the project's crates.
target_dir="${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/thena-sf/fuzz-target}"
mkdir -p "$target_dir"
for t in webhook mrkdwn timestamp category_name soql_literal; do
  echo "fuzz: $t for ${secs}s"
  (cd fuzz && cargo +nightly fuzz run "$t" --target-dir "$target_dir" -- -max_total_time="$secs" -rss_limit_mb=4096 2>&1 | tail -n 25)
done
echo "fuzz: every target ran ${secs}s without a crash"
