#!/usr/bin/env bash
# Checks crates/linux-audit/rules/*.rules with the real auditctl, without touching the kernel:
# each rule is passed to auditctl inside a new PID namespace, where the kernel refuses every
# audit command (EPERM) before looking at it. auditctl parses the whole rule first, so a rule
# that reaches "Error sending add rule data request" is valid auditctl syntax; any other
# message is a syntax error. Also checks that every rule has a key and that the file holds no
# control lines (-D, -b, -e, -f, ...), which the agent manages itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v auditctl >/dev/null || { echo "auditctl missing (apt-get install auditd)" >&2; exit 1; }
command -v unshare >/dev/null || { echo "unshare missing (util-linux)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "must run as root (unshare --pid)" >&2; exit 1; }

# The sandbox must really refuse: if auditctl -s succeeds in it, stop before sending rules.
if unshare --pid --fork auditctl -s >/dev/null 2>&1; then
    echo "audit commands are not refused inside a PID namespace; refusing to check rules" >&2
    exit 1
fi

fail=0
checked=0
for file in crates/linux-audit/rules/*.rules; do
    lineno=0
    while IFS= read -r line || [ -n "$line" ]; do
        lineno=$((lineno + 1))
        case "$line" in '' | '#'*) continue ;; esac
        checked=$((checked + 1))
        case "$line" in
            -a\ * | -w\ *) ;;
            *) echo "$file:$lineno: only -a and -w rules belong here: $line"; fail=1; continue ;;
        esac
        if ! [[ "$line" =~ (-k\ [^ ]+|-F\ key=[^ ]+) ]]; then
            echo "$file:$lineno: rule without a key: $line"; fail=1
        fi
        # shellcheck disable=SC2086 # the rule's words are auditctl arguments
        msg=$(unshare --pid --fork auditctl $line 2>&1 || true)
        if [[ "$msg" != *"Error sending add rule data request (Operation not permitted)"* ]]; then
            echo "$file:$lineno: auditctl rejects: $line"; echo "    $msg"; fail=1
        fi
    done <"$file"
done
echo "audit rules: $checked rules checked"
[ "$checked" -gt 0 ] || { echo "no rules found" >&2; exit 1; }
exit "$fail"
