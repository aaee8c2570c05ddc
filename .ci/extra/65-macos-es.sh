#!/usr/bin/env bash
# agent-macos-es (macOS Endpoint Security and /dev/bpf collectors): clippy for both macOS
# targets, which compiles the endpoint-sec binding and the BPF reader. Neither can link or run
# here (no macOS SDK, no Mac): this proves they compile; the mapping, the BPF filter and the
# bundle layout are tested on Linux by `cargo xtask test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cross_inc="$PWD/.ci/cross-include"
for t in aarch64_apple_darwin x86_64_apple_darwin; do
    export "CC_$t=clang" "CFLAGS_$t=-nostdlibinc -DRING_CORE_NOSTDLIBINC -isystem $cross_inc"
done
for target in aarch64-apple-darwin x86_64-apple-darwin; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    cargo clippy --locked --target "$target" -p agent-macos-es --all-targets -- -D warnings
done
