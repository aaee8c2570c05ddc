#!/usr/bin/env bash
# Bounded fuzz smoke run of the audit record parser (and the rule compiler): ~60 s in all,
# seeded with the reference audit logs and golden rules. Any crash fails CI with the input
# left in crates/linux-audit/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."

rustup toolchain list | grep -q '^nightly' || { echo "nightly toolchain missing (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing" >&2; exit 1; }

ref=testdata/go-libaudit
[ -d "$ref/audit-logs" ] || { echo "reference data missing at $ref" >&2; exit 1; }

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds/record_parser" "$seeds/rule_compiler"
i=0
for log in "$ref"/audit-logs/*.log; do
    while IFS= read -r line || [ -n "$line" ]; do
        i=$((i + 1))
        printf '%s\n' "$line" >"$seeds/record_parser/$i"
    done <"$log"
done
i=0
for rules in "$ref"/audit-rules/*.rules; do
    while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in '' | '#'*) continue ;; esac
        i=$((i + 1))
        printf '%s' "$line" >"$seeds/rule_compiler/$i"
    done <"$rules"
done

cd crates/linux-audit
# One build for both targets (the dependency build dominates).
cargo +nightly fuzz build
cargo +nightly fuzz run record_parser "$seeds/record_parser" -- -max_total_time=45 -max_len=4096 -rss_limit_mb=2048
cargo +nightly fuzz run rule_compiler "$seeds/rule_compiler" -- -max_total_time=15 -max_len=1024 -rss_limit_mb=2048
echo "fuzz smoke run: no crash"
