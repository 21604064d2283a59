#!/usr/bin/env bash
# Runs every test: installs the pinned conformance clients, then the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --workspace --all-targets --locked "$@"
