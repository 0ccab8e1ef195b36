#!/usr/bin/env bash
# The whole test suite: unit, integration and CLI tests (SQLite in-process, a private PostgreSQL
# server started here unless ORGPORT_PG_URL names one, private S3 and GCS servers unless
# ORGPORT_S3_ENDPOINT names them), and the README's round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
stops=()
trap 'for s in "${stops[@]}"; do bash "scripts/$s.sh" stop; done' EXIT
if [ -z "${ORGPORT_PG_URL:-}" ]; then
    stops+=(pg)
    env=$(bash scripts/pg.sh start) # a failed start stops here (inside `eval "$(…)"` it would not)
    eval "$env"
fi
if [ -z "${ORGPORT_S3_ENDPOINT:-}" ]; then
    stops+=(storage)
    env=$(bash scripts/storage.sh start)
    eval "$env"
fi
export ORGPORT_PG_URL ORGPORT_S3_ENDPOINT ORGPORT_S3_ACCESS_KEY ORGPORT_S3_SECRET_KEY ORGPORT_GCS_ENDPOINT
cargo test --workspace --locked
bash examples/roundtrip.sh >/dev/null
echo "round trip: 1 passed, 0 failed"
