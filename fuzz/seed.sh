#!/usr/bin/env bash
# Seeds the fuzz corpora with real archives of the example database: small ones (the fuzzer
# mutates small inputs faster), with and without embedded files and sensitive groups, and the
# single-row edge cases of the example's data (extreme integers, blobs, Unicode, NULL).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p orgport-cli -p orgport-testkit
bin=$PWD/target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/orgport-example" --out "$work/source.db" --orgs 3 --projects 1 --tasks 2 --users 4
mkdir -p "$work/files/1/logos" "$work/files/2"
printf 'a small file' > "$work/files/1/logos/a.png"
: > "$work/files/1/empty.txt"
head -c 3000 /dev/urandom > "$work/files/2/b.bin"
config=examples/saas/orgport.toml
{ cat "$config"; printf '\n[files.uploads]\nstore = "file://%s"\nprefix = "{org}/"\n' "$work/files"; } > "$work/files.toml"
n=0
export_one() {
    n=$((n + 1))
    "$bin/orgport" export --db "sqlite://$work/source.db" "$@" --out "$work/$n.orgport" >/dev/null 2>&1
}
export_one --config "$config" --org 1
export_one --config "$config" --org 2 --with passwords,otp,secrets --allow-plaintext-secrets
export_one --config "$work/files.toml" --org 1
export_one --config "$work/files.toml" --org 2 --org 3
for target in archive_read archive_import; do
    mkdir -p "fuzz/corpus/$target"
    cp "$work"/*.orgport "fuzz/corpus/$target/"
done
ls -l "$work"/*.orgport | awk '{print $5, $NF}'
