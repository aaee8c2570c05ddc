#!/usr/bin/env bash
# Short load smoke run of the Linux audit collector on the real kernel: 1 000 exec/s for
# 15 s with the default rules; fails unless the kernel lost no record, no event was dropped
# and every exec was seen. (The full acceptance run is 60 s: same command with `1000 60`.)
# Holds the same lock as the kernel tests, which share the kernel's audit state.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "must run as root (kernel audit)" >&2; exit 1; }
command -v flock >/dev/null || { echo "flock missing (util-linux)" >&2; exit 1; }
[ -x /bin/true ] || { echo "/bin/true missing" >&2; exit 1; }

cargo build --locked --profile bench -p agent-linux-audit --example load
# (The bench profile's output directory is target/release; let cargo find the binary.)
flock /tmp/agent-linux-audit-kernel-tests.lock \
    cargo run --locked --profile bench -p agent-linux-audit --example load -- 1000 15
