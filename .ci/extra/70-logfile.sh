#!/usr/bin/env bash
# agent-logfile: run the tailing benchmark (1 M lines, ~118 MB, three runs per scenario;
# a few seconds after the release build) so it keeps working and its throughput and CPU
# ratios against `cat` of the same bytes show up in the CI log.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo >/dev/null || { echo "cargo not found" >&2; exit 1; }
command -v cat >/dev/null || { echo "cat not found (coreutils)" >&2; exit 1; }
cargo bench --locked -p agent-logfile --bench tail
