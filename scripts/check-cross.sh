#!/usr/bin/env bash
# Cross-checks ipckit, ipckit-rpc and the `ipckit` command for macOS (Intel and
# Apple silicon) and FreeBSD: `cargo clippy -D warnings`, which type-checks
# every crate (a `cargo check`) and lints it, with -Zbuild-std and Debian's
# toolchain. Nothing is linked and nothing runs: no macOS or FreeBSD machine
# is involved (design notes: "Other Unix systems from Linux").
#
#   bash scripts/check-cross.sh
#
# Four cargo runs:
#   1. Intel macOS: every target of the three packages (tests, examples,
#      benches) with all features (tokio, tonic; the tests' dev-dependencies
#      turn them on anyway);
#   2. FreeBSD: the libraries and the binary with all features (the tests'
#      code is the same for every Unix but Linux, bar one `cfg!` in the
#      CLI's bench test: run 1 checks it, and skipping the test-only
#      dependencies here saves CI minutes);
#   3. `ipckit`'s library alone with default features, for both Intel
#      targets at once: alone, because ipckit-rpc turns ipckit's tokio feature on for
#      every package built beside it, and the code compiled without tokio
#      must be clean too (ipckit-rpc and the CLI have no OS-specific code
#      that depends on their features; Linux's clippy covers them);
#   4. Apple silicon: `ipckit`'s library with the tokio feature (all of its
#      FFI, the part that meets libc; `tonic` adds only Rust over the tokio
#      types and is checked on Intel macOS). It has the cfgs of Intel macOS
#      and no code depends on the architecture (no `target_arch` anywhere):
#      this catches what differs in the standard library and libc for
#      aarch64 (types, constants).
# One target dir, $REPO/target-cross (ignored by git), for all targets: each
# target's standard library is built once and kept.
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
(($# == 0)) || die "no arguments are taken (the targets are fixed: ${DEFAULT_TARGETS[*]})"
names=()
secs=()
start=$EPOCHREALTIME
# run NAME TARGETS ARGS...: one `cargo clippy` over the space-separated
# TARGETS; its time goes to the summary.
run() {
    local name=$1 target_args=() t t0=$EPOCHREALTIME
    for t in $2; do target_args+=(--target "$t"); done
    shift 2
    echo
    echo "== $name: cargo clippy $* (${target_args[*]})"
    PATH=/usr/bin:$PATH \
        RUSTC=/usr/bin/rustc \
        RUSTC_BOOTSTRAP=1 \
        /usr/bin/cargo clippy "$@" --no-deps --keep-going \
        -Zbuild-std=std,panic_abort \
        "${target_args[@]}" \
        --target-dir "$OUT" \
        -- -D warnings \
        || die "cargo clippy ($name) failed; see above"
    names+=("$name")
    secs+=("$(elapsed "$t0")")
    echo "== $name: clean in ${secs[-1]}s"
}
intel="x86_64-apple-darwin x86_64-unknown-freebsd"
run "macOS, all targets, all features" x86_64-apple-darwin \
    "${CRATES[@]}" --all-targets --all-features
run "FreeBSD, libraries and binary, all features" x86_64-unknown-freebsd \
    "${CRATES[@]}" --all-features
run "macOS+FreeBSD, libraries, default features" "$intel" \
    -p ipckit --lib
run "Apple silicon, ipckit, tokio feature" aarch64-apple-darwin \
    -p ipckit --lib --features tokio

echo
echo "== summary (checked and linted; not linked, not run)"
for i in "${!names[@]}"; do
    printf "   %-46s %8ss\n" "${names[$i]}" "${secs[$i]}"
done
printf "   %-46s %8ss\n" "total" "$(elapsed "$start")"
