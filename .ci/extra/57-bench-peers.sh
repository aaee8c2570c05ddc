#!/usr/bin/env bash
# Short run of the peers bench (`cargo xtask bench peers --ci`): one rate (200 exec/s), one
# repeat, 4 s per collector, against auditd writing raw logs, auditd + laurel and the release
# agent. Fails unless each collector delivered every exec with nothing lost by the kernel and
# the table, CSV and plot were written. The xtask installs auditd and laurel when missing,
# holds the kernel audit lock, refuses to run beside another audit daemon and restores the
# audit state it found. The plot goes to a temporary directory (docs/bench keeps the full run).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "must run as root (kernel audit, auditd)" >&2; exit 1; }
[ -x /bin/true ] || { echo "/bin/true missing" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo xtask bench peers --ci --out "$out"
for f in peers.csv peers.svg; do
    [ -s "$out/$f" ] || { echo "bench peers wrote no $f" >&2; exit 1; }
done
grep -q '<svg' "$out/peers.svg" || { echo "peers.svg is not an SVG" >&2; exit 1; }
[ "$(wc -l <"$out/peers.csv")" -eq 4 ] || { echo "peers.csv: expected a header and 3 rows" >&2; cat "$out/peers.csv" >&2; exit 1; }
