#!/usr/bin/env bash
# Bounded fuzz smoke run of the DNS decoder (message parser, frames of every link type, TCP
# reassembly): ~45 s, seeded with the responses in crates/dns/fuzz/seeds. Any crash fails CI
# with the input left in crates/dns/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."

rustup toolchain list | grep -q '^nightly' || { echo "nightly toolchain missing (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing" >&2; exit 1; }

seeds=crates/dns/fuzz/seeds
[ -n "$(ls -A "$seeds" 2>/dev/null)" ] || { echo "fuzz seeds missing at $seeds" >&2; exit 1; }

# libFuzzer adds what it finds to its first corpus directory: work on a copy.
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$seeds"/* "$corpus"/

cd crates/dns
cargo +nightly fuzz build message
cargo +nightly fuzz run message "$corpus" -- -max_total_time=45 -max_len=4096 -rss_limit_mb=2048
echo "DNS fuzz smoke run: no crash"
