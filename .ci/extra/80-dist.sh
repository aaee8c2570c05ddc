#!/usr/bin/env bash
# Release packaging (`cargo xtask dist`, docs/packaging.md):
# - every package is built (Linux x86_64 and aarch64, Windows; macOS has no Mach-O binary
#   here and is skipped with a note);
# - reproducible: the Linux x86_64 build is made a second time from scratch (another target
#   directory, another output directory) with the same SOURCE_DATE_EPOCH, and its binary,
#   .tar.gz, .deb and .rpm must be byte-identical to the first;
# - the Linux binaries are static: no dynamic loader, no GLIBC symbol version at all;
# - the .rpm's files, scripts and requirements, read with `rpm -qp`;
# - the .deb on a real systemd (xtask/tests/deb_systemd.rs): dpkg -i installs without
#   starting, `agent install --intake-key` starts it and it ships to a loopback intake,
#   dpkg --purge leaves nothing behind;
# - the Windows agent.exe prints its version under Wine.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "must run as root (packages are installed in a container)" >&2; exit 1; }
# The dist prerequisites (musl-tools, gcc-aarch64-linux-gnu, mingw) are installed by the
# xtask itself; these are the checks' own tools.
apt-get install -y -qq --no-install-recommends rpm binutils-aarch64-linux-gnu file qemu-user-static >/dev/null
for tool in rpm file objdump aarch64-linux-gnu-objdump sha256sum qemu-aarch64-static; do
    command -v "$tool" >/dev/null || { echo "missing prerequisite: $tool" >&2; exit 1; }
done

export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
work=$(mktemp -d /var/tmp/endpoint-agent-dist.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "--- cargo xtask dist (all targets)"
cargo xtask dist --out "$work/one"
(cd "$work/one" && sha256sum -c --quiet SHA256SUMS)
for f in \
    "endpoint-agent-$version-linux-x86_64.tar.gz" "endpoint-agent_${version}_amd64.deb" \
    "endpoint-agent-$version-1.x86_64.rpm" \
    "endpoint-agent-$version-linux-aarch64.tar.gz" "endpoint-agent_${version}_arm64.deb" \
    "endpoint-agent-$version-1.aarch64.rpm" \
    "endpoint-agent-$version-windows-x86_64.zip" \
    "update/manifest.json"; do
    grep -q "  $f\$" "$work/one/SHA256SUMS" || { echo "dist did not make $f" >&2; exit 1; }
done

echo "--- the Linux binaries are static (no GLIBC symbol versions)"
for arch in x86_64 aarch64; do
    bin="$work/one/update/$version/agent-linux-$arch"
    file "$bin"
    file "$bin" | grep -Eq 'statically linked|static-pie linked' || { echo "$bin is not static" >&2; exit 1; }
    dump=objdump; [ "$arch" = aarch64 ] && dump=aarch64-linux-gnu-objdump
    if "$dump" -T "$bin" 2>/dev/null | grep -E 'GLIBC_[0-9]'; then
        echo "$bin references glibc symbol versions" >&2; exit 1
    fi
    run=""; [ "$arch" = aarch64 ] && run=qemu-aarch64-static
    binver=$($run "$bin" --version)
    echo "$arch: $binver"
    case "$binver" in
        "v$version" | "v$version+"*) ;;
        *) echo "$bin --version printed '$binver', the packages are $version" >&2; exit 1 ;;
    esac
done

echo "--- the .rpm as rpm reads it"
rpm_file="$work/one/endpoint-agent-$version-1.x86_64.rpm"
rpm -qp --info "$rpm_file"
rpm -qlvp "$rpm_file"
requires=$(rpm -qp --requires "$rpm_file")
echo "$requires"
if grep -Ev '^(rpmlib\(|/bin/sh)' <<<"$requires"; then
    echo "the .rpm requires more than rpmlib features and /bin/sh (a static binary needs no libc)" >&2; exit 1
fi
rpm -qp --scripts "$rpm_file" | grep -q 'try-restart' || { echo "the .rpm lacks its scriptlets" >&2; exit 1; }

echo "--- reproducible: the Linux x86_64 packages again, from a clean target directory"
CARGO_TARGET_DIR="$work/target" cargo xtask dist --target linux-x86_64 --out "$work/two"
fail=0
while read -r sum path; do
    other=$(grep "  $path\$" "$work/two/SHA256SUMS" | cut -d' ' -f1 || true)
    if [ "$sum" != "$other" ]; then
        echo "not reproducible: $path ($sum vs ${other:-missing})" >&2
        fail=1
    fi
done < <(grep -E "linux-x86_64|_amd64\.deb|x86_64\.rpm" "$work/one/SHA256SUMS")
[ "$fail" = 0 ] || exit 1
echo "identical: $(grep -cE 'linux-x86_64|_amd64\.deb|x86_64\.rpm' "$work/one/SHA256SUMS") files"

echo "--- the Windows agent.exe starts under Wine"
# Debian's Wine 8 lacks ProcessPrng (bcryptprimitives.dll, Wine 8.13+), which Rust >= 1.78
# binaries import: .ci/wine/runner.sh puts a shim DLL beside agent.exe that provides it.
apt-get install -y -qq --no-install-recommends wine64 >/dev/null
win="$work/windows"
mkdir -p "$win"
python3 -m zipfile -e "$work/one/endpoint-agent-$version-windows-x86_64.zip" "$win"
winver=$(WINEPREFIX="$work/wineprefix" WINE_RUNNER_CACHE="$work/wineshim" \
    .ci/wine/runner.sh "$win/agent.exe" --version | tr -d '\r')
echo "agent.exe --version: $winver"
case "$winver" in
    "v$version" | "v$version+"*) ;;
    *) echo "agent.exe --version printed '$winver', the zip is $version" >&2; exit 1 ;;
esac

echo "--- the .deb on a real systemd"
ENDPOINT_AGENT_DIST_DIR="$work/one" cargo test --locked -p xtask --test deb_systemd -- --ignored
