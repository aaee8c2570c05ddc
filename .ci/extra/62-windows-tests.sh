#!/usr/bin/env bash
# The Windows build of the portable crates' tests, executed under Wine (not only compiled).
# Debian's Wine 8.0 cannot start Rust >= 1.78 binaries by itself: .ci/wine/runner.sh puts a
# ProcessPrng shim beside each test .exe (see .ci/wine/processprng.c). ETW sessions and
# EvtSubscribe do not work under Wine: that code stays compiled-only (60-windows.sh).
# Local use and the list of what runs: docs/testing-windows.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-pc-windows-gnu
crates=(agent-event agent-config agent-os agent-buffer agent-logfile agent-pipeline agent-transport agent-etw)

if ! command -v wine64 >/dev/null && [ ! -x /usr/lib/wine/wine64 ]; then
    apt-get install -y -qq --no-install-recommends wine64 >/dev/null
fi
command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ] ||
    { echo "missing prerequisite: wine64" >&2; exit 1; }
command -v x86_64-w64-mingw32-gcc >/dev/null ||
    { echo "missing prerequisite: x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64)" >&2; exit 1; }
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# A Wine prefix of our own, removed at the end (with its wineserver).
WINEPREFIX=$(mktemp -d /tmp/agent-wine.XXXXXX)
WINE_RUNNER_CACHE="$WINEPREFIX-shim"
export WINEPREFIX WINE_RUNNER_CACHE
cleanup() {
    local server
    server=$(command -v wineserver || echo /usr/lib/wine/wineserver)
    [ -x "$server" ] && "$server" -k 2>/dev/null || true
    rm -rf "$WINEPREFIX" "$WINE_RUNNER_CACHE"
}
trap cleanup EXIT
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$PWD/.ci/wine/runner.sh"
# A test binary that hangs under Wine fails after this many seconds instead of hanging CI.
export WINE_RUNNER_TIMEOUT="${WINE_RUNNER_TIMEOUT:-600}"

# Not run under Wine (they run on Linux, and would on Windows): Wine's crypt32 takes 3-7 s to
# list the ROOT store, which every Shipper start does (rustls-native-certs), so these timing
# tests miss their deadlines, and the property tests starting hundreds of shippers outlast
# the time limit. Everything else of agent-transport runs.
wine_skip=(
    check_and_start_agree
    every_record_is_delivered_once_in_order_or_rejected
    lone_event_is_sent_after_five_seconds
    revoked_key_keeps_its_records_without_blocking_other_keys
    refusals_beyond_the_window_drop_one_record_per_window
    requests_in_flight_overlap_and_acknowledge_in_order
)
skip_args=()
for t in "${wine_skip[@]}"; do skip_args+=(--skip "$t"); done

pkgs=()
for c in "${crates[@]}"; do pkgs+=(-p "$c"); done
cargo clippy --locked --target "$target" "${pkgs[@]}" --all-targets -- -D warnings

log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
fail=0
summary=()
# Built and run crate by crate, as a developer would (building them all in one cargo call
# unifies features differently, so the per-crate runs would rebuild anyway).
for c in "${crates[@]}"; do
    echo "--- $c (Windows build, under Wine)"
    start=$SECONDS
    args=()
    [ "$c" != agent-transport ] || args=(-- "${skip_args[@]}")
    if ! cargo test --locked --target "$target" -p "$c" "${args[@]}" 2>&1 | tee "$log"; then
        fail=1
    fi
    # Sum the "test result" lines of every test binary and doc-test run of the crate.
    read -r passed failed ignored < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) g += $i
        } } END { print p + 0, f + 0, g + 0 }' "$log")
    summary+=("$(printf '%-16s %4d passed %3d failed %3d ignored  %4ds (build + run)' "$c" "$passed" "$failed" "$ignored" $((SECONDS - start)))")
    [ "$passed" -gt 0 ] || { echo "$c: no test ran under Wine" >&2; fail=1; }
done
echo "--- tests executed under Wine (Windows build)"
printf '%s\n' "${summary[@]}"
[ "$fail" = 0 ] || { echo "Windows tests under Wine failed" >&2; exit 1; }
