#!/usr/bin/env bash
# Cross-checks ipckit, ipckit-rpc and the `ipckit` command for macOS (Intel and
# Apple silicon) and FreeBSD: `cargo clippy -D warnings`, which type-checks
# every crate (a `cargo check`) and lints it, with -Zbuild-std and Debian's
# toolchain. Nothing is linked and nothing runs: no macOS or FreeBSD machine
# is involved (design notes: "Other Unix systems from Linux").
#
#   bash scripts/check-cross.sh [TARGET...]
#
# e.g.  bash scripts/check-cross.sh x86_64-unknown-freebsd
#
# Per target, two runs (as the Linux CI lints; on aarch64-apple-darwin, whose
# cfgs Intel macOS covers, only the libraries and binary with all features):
# every target of the three
# packages (tests, examples, benches) with all features (tokio, tonic; the
# tests' dev-dependencies turn them on anyway), then the libraries and the
# binary alone with default features, where the tokio-only code is compiled
# out and must still be clean. One target dir, $REPO/target-cross (ignored by
# git), for all targets: each target's standard library is built once and kept.
#
# Made for Debian 12, run as root when packages are missing (it installs them
# as scripts/test-windows.sh does).
#
# Environment:
#   IPCKIT_REPO   workspace to check (default: the repository holding this script)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "${IPCKIT_REPO:-$SCRIPT_DIR/..}" && pwd)
OUT=$REPO/target-cross
PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy)
DEFAULT_TARGETS=(x86_64-apple-darwin aarch64-apple-darwin x86_64-unknown-freebsd)
CRATES=(-p ipckit -p ipckit-rpc -p ipckit-cli)

die() {
    echo "check-cross.sh: error: $*" >&2
    exit 1
}

# Seconds elapsed since $1 (an $EPOCHREALTIME value), with one decimal.
elapsed() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# One run at a time per repository: runs share the target dir.
mkdir -p "$OUT"
exec 9>"$OUT/.check-cross.lock"
if ! flock -n 9; then
    echo "== waiting for another scripts/check-cross.sh run on $REPO to finish"
    flock 9
fi

# ---------------------------------------------------------------- packages

# shellcheck source=lib/debian.sh
source "$SCRIPT_DIR/lib/debian.sh"
mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
debian_rust_toolchain
[[ -d /usr/lib/rustlib/src/rust/library ]] \
    || die "/usr/lib/rustlib/src/rust/library is missing (package rust-web-src)"
/usr/bin/cargo --version
/usr/bin/cargo clippy --version

# ---------------------------------------------------------------- clippy

cd "$REPO"
targets=("$@")
((${#targets[@]})) || targets=("${DEFAULT_TARGETS[@]}")
names=()
secs=()
start=$EPOCHREALTIME
for target in "${targets[@]}"; do
    echo
    echo "== $target"
    t0=$EPOCHREALTIME
    runs=("--all-targets --all-features" "")
    # Apple silicon has the cfgs of Intel macOS but its architecture: its
    # libraries and binary with every feature; the tests and the
    # default-feature run are covered on Intel (CI time).
    [[ $target == aarch64-apple-darwin ]] && runs=("--all-features")
    for features in "${runs[@]}"; do
        echo "-- cargo clippy ${CRATES[*]} ${features:-(libraries and binary, default features)}"
        # shellcheck disable=SC2086 # $features is meant to split
        PATH=/usr/bin:$PATH \
            RUSTC=/usr/bin/rustc \
            RUSTC_BOOTSTRAP=1 \
            /usr/bin/cargo clippy "${CRATES[@]}" $features --no-deps --keep-going \
            -Zbuild-std=std,panic_abort \
            --target "$target" \
            --target-dir "$OUT" \
            -- -D warnings \
            || die "cargo clippy for $target ${features:-(default features)} failed; see above"
    done
    names+=("$target")
    secs+=("$(elapsed "$t0")")
    echo "== $target: clean in ${secs[-1]}s"
done

echo
echo "== summary (checked and linted; not linked, not run)"
for i in "${!names[@]}"; do
    printf '   %-30s %8ss\n' "${names[$i]}" "${secs[$i]}"
done
printf '   %-30s %8ss\n' "total" "$(elapsed "$start")"
