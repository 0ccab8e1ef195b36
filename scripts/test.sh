#!/usr/bin/env bash
# The whole test suite: unit, integration and CLI tests (SQLite in-process, a private PostgreSQL
# server started here unless ORGPORT_PG_URL names one), and the README's round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${ORGPORT_PG_URL:-}" ]; then
    eval "$(bash scripts/pg.sh start)"
    trap 'bash scripts/pg.sh stop' EXIT
fi
export ORGPORT_PG_URL
cargo test --workspace --locked
bash examples/roundtrip.sh >/dev/null
echo "round trip: 1 passed, 0 failed"
