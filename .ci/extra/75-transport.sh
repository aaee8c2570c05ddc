#!/usr/bin/env bash
# agent-transport: run the shipping benchmark in CI mode (20 000 events) so it keeps
# working and its ratios show up in the CI log: shipper CPU against gzip alone, and events/s
# with 1 request in flight against the default 4 (loopback intake answering at once and
# after a 20 ms round trip). The full run is `cargo bench -p agent-transport`.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo >/dev/null || { echo "cargo not found" >&2; exit 1; }
BENCH_EVENTS=20000 cargo bench --locked -p agent-transport --bench ship
