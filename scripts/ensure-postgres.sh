#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at 127.0.0.1:5432 (the machine's;
# started if it is not), creates a fresh database for this test run and prints
# its URL. The tests make their own databases beside it and drop them.
set -euo pipefail
host=127.0.0.1 port=5432
if ! pg_isready -q -h "$host" -p "$port"; then
  echo "starting PostgreSQL" >&2
  version=$(ls /etc/postgresql | sort -V | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do
    pg_isready -q -h "$host" -p "$port" && break
    sleep 0.5
  done
  pg_isready -h "$host" -p "$port" >&2
fi
db="thena_sf_run_$(date +%s)_$$"
psql -q -h "$host" -p "$port" -U postgres -d postgres -c "CREATE DATABASE $db" >&2
echo "postgres://postgres@$host:$port/$db"
