#!/usr/bin/env bash
# Runs every test: installs the pinned conformance clients and the browser,
# makes sure PostgreSQL runs (with a fresh database for this run), then the
# whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
if [ -z "${THENA_SF_TEST_PG:-}" ]; then
  THENA_SF_TEST_PG=$(scripts/ensure-postgres.sh)
  export THENA_SF_TEST_PG
  drop_db() { psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS ${THENA_SF_TEST_PG##*/} WITH (FORCE)" >/dev/null 2>&1 || true; }
  trap drop_db EXIT
fi
echo "PostgreSQL for the tests: $THENA_SF_TEST_PG" >&2
# The connector's shape (ARCHITECTURE.md): no import loop, no function over 80 lines.
python3 scripts/shape.py
cargo test --workspace --all-targets --locked "$@"
# A production build may leave the emulator out: it must keep compiling.
cargo clippy -p thena-sf --no-default-features --locked -- -D warnings
# The container image: built and run where a container engine works here.
scripts/container.sh
