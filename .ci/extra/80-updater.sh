#!/usr/bin/env bash
# Bounded fuzz smoke run of the update manifest parser and signature check (~30 s), seeded
# with the signed fixtures. Any crash fails CI with the input left in
# crates/updater/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."

rustup toolchain list | grep -q '^nightly' || { echo "nightly toolchain missing (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing" >&2; exit 1; }

fixtures=crates/updater/tests/fixtures/manifests
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
for f in "$fixtures"/*.json "$fixtures"/*.minisig; do
    cp "$f" "$seeds/"
done

cd crates/updater
cargo +nightly fuzz run manifest "$seeds" -- -max_total_time=30 -max_len=8192 -rss_limit_mb=2048
echo "fuzz smoke run: no crash"
