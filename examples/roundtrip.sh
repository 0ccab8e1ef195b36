#!/usr/bin/env bash
# The main job on the embedded default: export one organisation of an example SaaS database
# (SQLite) with its files (a local directory), import it into a second database that already
# holds other organisations, verify.
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
# Files: each workspace keeps its uploads under `<workspace>/` of a directory. The example's
# orgport.toml plus a [files.uploads] section naming the source's directory, and the target's.
for org in 1 2 3; do
    mkdir -p "$work/files/source/$org/logos" "$work/files/source/$org/exports"
    for i in 1 2 3 4; do head -c $((org * 1000 + i * 137)) /dev/urandom > "$work/files/source/$org/logos/$i.png"; done
    printf 'name,plan\nworkspace %s,pro\n' "$org" > "$work/files/source/$org/exports/summary.csv"
done
mkdir -p "$work/files/target/100"
echo "the target's own file" > "$work/files/target/100/readme.txt"
with_files() { cat "$config"; printf '\n[files.uploads]\nstore = "file://%s"\nprefix = "{org}/"\n' "$(cd "$1" && pwd)"; }
with_files "$work/files/source" > "$work/source.toml"
with_files "$work/files/target" > "$work/target.toml"

step "$bin/orgport" plan --db "sqlite://$work/source.db" --config "$work/source.toml"
step "$bin/orgport" export --db "sqlite://$work/source.db" --config "$work/source.toml" --org 1 --out "$work/org-1.orgport"
step "$bin/orgport" import --db "sqlite://$work/target.db" --config "$work/target.toml" --in "$work/org-1.orgport" --dry-run
result=$("$bin/orgport" import --db "sqlite://$work/target.db" --config "$work/target.toml" --in "$work/org-1.orgport" --json)
printf '\n\033[1m$ %s\033[0m\n%s\n' "orgport import --json …" "$result"
new_org=$(printf '%s' "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["orgs"][0]["target"])')
step "$bin/orgport" verify --db "sqlite://$work/target.db" --config "$work/target.toml" --in "$work/org-1.orgport" --org "$new_org"
echo
echo "organisation 1 of $work/source.db is now organisation $new_org of $work/target.db;"
echo "its files are in $work/files/target/$new_org:"
(cd "$work/files/target/$new_org" && find . -type f | sort | sed 's|^\./|  |')
