#!/usr/bin/env bash
# agent-etw (Windows ETW collector): clippy for the Windows target, and a release agent.exe
# linked with mingw-w64 that really imports the ETW API. ETW cannot run here: this proves the
# Windows binding compiles and links; the mapping is tested on Linux by `cargo xtask test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=x86_64-pc-windows-gnu
command -v x86_64-w64-mingw32-gcc >/dev/null || { echo "x86_64-w64-mingw32-gcc not found (gcc-mingw-w64-x86-64)" >&2; exit 1; }
command -v x86_64-w64-mingw32-objdump >/dev/null || { echo "x86_64-w64-mingw32-objdump not found (binutils-mingw-w64-x86-64)" >&2; exit 1; }
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

cargo clippy --locked --target "$target" -p agent-etw --all-targets -- -D warnings
# Built the way the release package is (`cargo xtask dist`: same flags), so that 80-dist
# finds this build done instead of linking a second fat-LTO agent.exe.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo xtask dist --target windows-x86_64 --out "$out"

exe="${CARGO_TARGET_DIR:-target}/$target/release/agent.exe"
[ "$(head -c 2 "$exe")" = "MZ" ] || { echo "$exe is not a PE executable" >&2; exit 1; }
imports=$(x86_64-w64-mingw32-objdump -p "$exe")
for fn in StartTraceW OpenTraceW ProcessTrace ControlTraceW EnableTraceEx2; do
    grep -qw "$fn" <<<"$imports" || { echo "agent.exe does not import $fn: the ETW collector is not linked in" >&2; exit 1; }
done
echo "agent.exe linked ($(stat -c %s "$exe") bytes), ETW API imported"
