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
# Doc examples are code too: a doctest in sys that names a public module
# (`ipckit::security::...`) belongs on the module that re-exports the type.
doctest=$(grep -rnE '^[[:space:]]*//[/!].*\bipckit::[a-z_]+::' crates/ipckit/src/sys --include='*.rs' || true)
if [ -n "$doctest" ]; then
    echo "check-layers: sys names a public module in its docs (move the example to the re-export):" >&2
    echo "$doctest" >&2
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "check-layers: sys must stay a leaf; pass plain data (crate::sys::plain) instead" >&2
    exit 1
fi
echo "check-layers: sys names only crate::sys"

# No import cycles between the modules of ipckit-rpc (docs/ARCHITECTURE.md:
# plain types and errors -> framing and auth -> budget, pool, outbox -> core
# -> the server and client faces). Each file names the modules it uses as
# `crate::MODULE`; comments (doc links included) are not imports. `tsort`
# reports a loop in that graph.
module_cycles() {
    # The top-level modules of a crate (`name.rs`, or a folder `name/` with
    # every file below it counted as `name`) and the `crate::x` they name
    # outside comments; `tsort` reports any loop. A name the crate root
    # re-exports (`crate::Stream`, `crate::{peer, plain}`: `pub use
    # stream::{..., Stream}` in lib.rs) counts as its module.
    local src=$1
    local edges=""
    local file module dep rel line from names name root
    local -A alias=()
    for root in "$src/lib.rs" "$src/main.rs"; do
        [ -f "$root" ] || continue
        while IFS= read -r line; do
            from=$(sed -E 's/^[[:space:]]*pub(\(crate\))? use ([a-z_]+)::.*/\2/' <<<"$line")
            names=$(sed -E 's/^[^:]*::\{?([^};]*)\}?;.*/\1/' <<<"$line" | tr ',' ' ')
            for name in $names; do alias[$name]=$from; done
        done < <(grep -E '^[[:space:]]*pub(\(crate\))? use [a-z_]+::' "$root")
    done
    while IFS= read -r file; do
        rel=${file#"$src"/}
        case $rel in
        lib.rs | main.rs) continue ;;
        */*) module=${rel%%/*} ;;
        *) module=${rel%.rs} ;;
        esac
        for dep in $(grep -vE '^[[:space:]]*//' "$file" | grep -oE 'crate::[A-Za-z_]+' | sed 's/crate:://' | sort -u); do
            dep=${alias[$dep]:-$dep}
            [[ $dep =~ ^[a-z_]+$ ]] || continue # a macro or type of the root itself
            [ "$dep" = "$module" ] && continue
            edges+="$module $dep"$'\n'
        done
    done < <(find "$src" -name '*.rs' | sort)
    tsort <<<"$edges" 2>&1 >/dev/null | grep -E 'loop|^tsort: ' || true
}
for crate in crates/*/; do
    [ -d "$crate/src" ] || continue
    name=$(basename "$crate")
    loops=$(module_cycles "${crate%/}/src")
    [ -n "$loops" ] || continue
    echo "check-layers: $name has an import cycle between its modules:" >&2
    echo "$loops" >&2
    exit 1
done
echo "check-layers: no import cycle between the top-level modules of any crate"
