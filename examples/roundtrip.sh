#!/usr/bin/env bash
# The main job on the embedded default: export one organisation of an example SaaS database
# (SQLite), import it into a second database that already holds other organisations, verify.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p orgport-cli -p orgport-testkit
bin=target/release
work=${ORGPORT_DEMO_DIR:-target/demo}
rm -rf "$work" && mkdir -p "$work"
config=examples/saas/orgport.toml

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# Source: workspaces 1-3 with a self-referencing chain of 200 tasks; target: workspaces 100-101,
# sharing some users (by e-mail) with the source.
"$bin/orgport-example" --out "$work/source.db" --orgs 3 --chain 200
"$bin/orgport-example" --out "$work/target.db" --orgs 2 --first-org 100 --seed 7
step "$bin/orgport" plan --db "sqlite://$work/source.db" --config "$config"
step "$bin/orgport" export --db "sqlite://$work/source.db" --config "$config" --org 1 --out "$work/org-1.orgport"
step "$bin/orgport" import --db "sqlite://$work/target.db" --config "$config" --in "$work/org-1.orgport" --dry-run
result=$("$bin/orgport" import --db "sqlite://$work/target.db" --config "$config" --in "$work/org-1.orgport" --json)
printf '\n\033[1m$ %s\033[0m\n%s\n' "orgport import --json …" "$result"
new_org=$(printf '%s' "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orgs"][0]["target"])')
step "$bin/orgport" verify --db "sqlite://$work/target.db" --config "$config" --in "$work/org-1.orgport" --org "$new_org"
echo
echo "organisation 1 of $work/source.db is now organisation $new_org of $work/target.db"
