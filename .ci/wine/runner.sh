#!/usr/bin/env bash
# Runs a Windows executable under Wine, for `cargo test --target x86_64-pc-windows-gnu`:
#   CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/path/to/.ci/wine/runner.sh
# and for single programs (`runner.sh agent.exe --version`).
#
# - Puts the ProcessPrng shim (processprng.c, built once with mingw-w64 and cached) beside the
#   .exe as bcryptprimitives.dll: Debian's Wine 8.0 lacks that export (Wine 8.13+) and cannot
#   start Rust >= 1.78 binaries without it.
# - Uses its own Wine prefix: $WINEPREFIX if set (CI sets a temporary one and removes it),
#   else ${TMPDIR:-/tmp}/endpoint-agent-wine-$UID (created on first use, ~10 s).
# - WINEDEBUG=-all unless set; a time limit per program (WINE_RUNNER_TIMEOUT seconds,
#   default 300) so a test binary that hangs under Wine fails instead of hanging CI.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

[ "$#" -ge 1 ] || { echo "usage: $0 PROGRAM.exe [ARGS...]" >&2; exit 2; }
exe=$1
[ -f "$exe" ] || { echo "wine runner: $exe not found" >&2; exit 2; }

wine=$(command -v wine64 || true)
[ -n "$wine" ] || wine=/usr/lib/wine/wine64
[ -x "$wine" ] || { echo "wine runner: wine64 not found (apt-get install wine64)" >&2; exit 2; }
command -v x86_64-w64-mingw32-gcc >/dev/null ||
    { echo "wine runner: x86_64-w64-mingw32-gcc not found (gcc-mingw-w64-x86-64)" >&2; exit 2; }

# The shim, built once per version of its source.
src="$here/processprng.c"
cache="${WINE_RUNNER_CACHE:-${TMPDIR:-/tmp}/endpoint-agent-wine-shim-$UID}"
dll="$cache/bcryptprimitives-$(sha256sum "$src" | cut -c1-16).dll"
if [ ! -f "$dll" ]; then
    mkdir -p "$cache"
    tmp=$(mktemp "$cache/build.XXXXXX")
    x86_64-w64-mingw32-gcc -shared -O2 -o "$tmp" "$src" -ladvapi32
    mv -f "$tmp" "$dll"
fi
# Beside the .exe (the application directory comes first in the DLL search order). Copied
# through a temporary name so a concurrent run never sees a half-written DLL.
beside="$(dirname "$exe")/bcryptprimitives.dll"
if ! cmp -s "$dll" "$beside" 2>/dev/null; then
    tmp=$(mktemp "$(dirname "$exe")/.bcryptprimitives.XXXXXX")
    cp "$dll" "$tmp"
    mv -f "$tmp" "$beside"
fi

export WINEPREFIX="${WINEPREFIX:-${TMPDIR:-/tmp}/endpoint-agent-wine-$UID}"
export WINEDEBUG="${WINEDEBUG:--all}"
# No Wine dialogs (Mono/Gecko installers, crash windows) on a machine without a display.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"
unset DISPLAY WAYLAND_DISPLAY
exec timeout --kill-after=10 "${WINE_RUNNER_TIMEOUT:-300}" "$wine" "$@"
