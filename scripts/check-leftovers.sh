#!/usr/bin/env bash
# Fails if the tests left anything behind: every endpoint a test creates is
# named by `unique_name` (crates/ipckit/tests/util), `ipckit-t-TAG-PID-N-NANOS`,
# so whatever still carries that prefix once `cargo test` has ended is a
# leftover:
#
#   - shared-memory regions and channels: /dev/shm/*ipckit-t-*  (Linux)
#   - socket files, mailslot receivers and broadcast group directories in
#     ipckit's runtime directory: $XDG_RUNTIME_DIR/ipckit/ipckit-t-* (an
#     absolute XDG_RUNTIME_DIR), else /tmp/ipckit-$(id -u)/ipckit-t-*
#   - socket files and directories in /tmp (and $TMPDIR): ipckit-t-*
#   - processes still running with ipckit-t- in their command line (a test's
#     server that was never killed); listed, never killed by this script.
#
# Usage:
#   scripts/check-leftovers.sh          list leftovers; exit 1 naming each, 0 if none
#   scripts/check-leftovers.sh --clean  remove the files, directories and regions
#                                       (stale ones from earlier runs); exit 1 only if
#                                       one could not be removed or a test process
#                                       still runs. Run it BEFORE the tests, never
#                                       while tests run (it would remove their files).
#
# CI: `scripts/check-leftovers.sh --clean`, then `cargo test --workspace`, then
# `scripts/check-leftovers.sh`.
set -u

clean=0
case "${1:-}" in
    "") ;;
    --clean) clean=1 ;;
    -h | --help)
        sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "check-leftovers: unknown argument '$1' (use --clean or nothing)" >&2
        exit 2
        ;;
esac

uid=$(id -u)
case "${XDG_RUNTIME_DIR:-}" in
    /*) runtime="$XDG_RUNTIME_DIR/ipckit" ;;
    *) runtime="/tmp/ipckit-$uid" ;;
esac

# The directories to look in, each once.
dirs=()
add_dir() {
    local d
    [ -d "$1" ] || return 0
    for d in "${dirs[@]}"; do
        [ "$d" -ef "$1" ] && return 0
    done
    dirs+=("$1")
}
add_dir /dev/shm
add_dir "$runtime"
add_dir /tmp
[ -n "${TMPDIR:-}" ] && add_dir "$TMPDIR"

# What a leftover is, for the message.
kind_of() {
    if [ -S "$1" ]; then
        echo "socket file"
    elif [ -d "$1" ]; then
        case "$1" in
            *.group) echo "broadcast group directory" ;;
            *) echo "directory" ;;
        esac
    elif [ "${1#/dev/shm/}" != "$1" ]; then
        echo "shared-memory region"
    else
        echo "file"
    fi
}

found=0
removed=0
for dir in "${dirs[@]}"; do
    while IFS= read -r -d '' path; do
        kind=$(kind_of "$path")
        if [ "$clean" = 1 ]; then
            if rm -rf -- "$path"; then
                echo "check-leftovers: removed $kind $path"
                removed=$((removed + 1))
            else
                echo "check-leftovers: cannot remove $kind $path" >&2
                found=$((found + 1))
            fi
        else
            echo "check-leftovers: left behind: $kind $path" >&2
            found=$((found + 1))
        fi
    done < <(find "$dir" -mindepth 1 -maxdepth 1 -name '*ipckit-t-*' -print0 2>/dev/null)
done

# Test processes still running (Linux /proc; elsewhere ps).
self=$$
if [ -d /proc/self ]; then
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [ "$pid" = "$self" ] && continue
        # A process may end while we look: then it is no leftover.
        cmd=$({ tr '\0' ' ' <"$proc/cmdline"; } 2>/dev/null) || continue
        case "$cmd" in
            *check-leftovers*) continue ;;
            *ipckit-t-*)
                echo "check-leftovers: still running: process $pid: $cmd" >&2
                found=$((found + 1))
                ;;
        esac
    done
fi

if [ "$clean" = 1 ]; then
    echo "check-leftovers: removed $removed stale entries"
fi
if [ "$found" -gt 0 ]; then
    echo "check-leftovers: $found things left behind by the tests (looked in: ${dirs[*]})" >&2
    exit 1
fi
echo "check-leftovers: nothing left behind (looked in: ${dirs[*]})"
