#!/usr/bin/env bash
# The whole test suite: unit, integration and CLI tests, and the README's round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
bash examples/roundtrip.sh >/dev/null
echo "round trip: 1 passed, 0 failed"
