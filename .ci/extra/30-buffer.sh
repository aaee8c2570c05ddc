#!/usr/bin/env bash
# agent-buffer: run the throughput benchmark in CI mode (64 MiB per record size, one run)
# so the bench keeps working and its ratios show up in the CI log. The full 1 GiB run is
# `cargo bench -p agent-buffer`.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo >/dev/null || { echo "cargo not found" >&2; exit 1; }
AGENT_BUFFER_BENCH_BYTES=$((64 * 1024 * 1024)) AGENT_BUFFER_BENCH_REPS=1 \
    cargo bench --locked -p agent-buffer --bench throughput
