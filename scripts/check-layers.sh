#!/usr/bin/env bash
# Fails if the platform layer names anything above it.
#
# `sys` is a leaf (docs/ARCHITECTURE.md): every file under
# crates/ipckit/src/sys/ may name `crate::sys` and nothing else of the crate:
# no public module (`crate::stream`, `crate::security`, ...), no
# `crate::Error`, no `crate::address`, not even the crate-root aliases of its
# own plain-data modules (`crate::plain`, `crate::peer`, `crate::sync` are
# `crate::sys::...` re-exported for the layers above). Comments are not code
# and are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed='sys'
bad=$(grep -rnE 'crate::[A-Za-z_]+' crates/ipckit/src/sys --include='*.rs' \
    | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' \
    | grep -E "crate::(\\{|[A-Za-z_]+)" \
    | grep -vE "^[^:]+:[0-9]+:.*crate::($allowed)\\b[^,]*$" || true)
# A line may name several paths: check each `crate::X` on the remaining lines.
fail=0
while IFS= read -r line; do
    [ -z "$line" ] && continue
    for name in $(grep -oE 'crate::(\{|[A-Za-z_]+)' <<<"${line#*:*:}" | sed 's/crate:://'); do
        if ! grep -qE "^($allowed)$" <<<"$name"; then
            echo "check-layers: ${line%%:*}:$(cut -d: -f2 <<<"$line"): sys names crate::$name" >&2
            fail=1
        fi
    done
done <<<"$bad"
if [ "$fail" -ne 0 ]; then
    echo "check-layers: sys must stay a leaf; pass plain data (crate::sys::plain) instead" >&2
    exit 1
fi
echo "check-layers: sys names only crate::sys"
