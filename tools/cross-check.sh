#!/usr/bin/env bash
# Builds and checks greenlet-rs for the targets this machine cannot run natively:
#
#   tools/cross-check.sh            # or: make cross-check
#
# 1. Windows x64 (x86_64-pc-windows-gnu, mingw-w64 as linker): greenlet-core's Rust
#    tests, debug and release, run under wine; clippy -D warnings on greenlet-core for
#    that target; greenlet-py built and linked into _greenlet.dll for every CPython in
#    $CROSS_PYTHONS (pythonXY.dll is imported through raw-dylib, so no Windows CPython
#    is needed to link; none is here to run it), or only checked for those also in
#    $CROSS_WIN_CHECK_ONLY, and for all of them when mingw is missing.
#    The MSVC flavour (x86_64-pc-windows-msvc, what CPython for Windows is built with)
#    cannot be linked here (no MSVC libraries): greenlet-core is built as an rlib (its
#    switch assembled, with its unwind tables), clippy'd, and greenlet-py checked.
# 2. macOS (x86_64-apple-darwin, aarch64-apple-darwin): greenlet-core built as an rlib
#    (dev profile, so the object code, the switch's assembly included, goes through the
#    Mach-O assembler; no link, there is no macOS SDK here), its tests type-checked, and
#    `cargo check` of greenlet-py for every CPython in $CROSS_PYTHONS. Nothing runs.
#
# Missing rustup targets are added. mingw-w64 and wine come from apt-get, and only if
# this runs as root; otherwise the Windows part is skipped with a "!!!! SKIPPING" line
# (not failed). Debian 12's wine 8.0 lacks bcryptprimitives.dll, which Rust's std
# imports (ProcessPrng): tools/wine/bcryptprimitives.c is built into the private wine
# prefix when the prefix has none.
#
# Everything is built into target/cross (CARGO_TARGET_DIR, kept between runs), the
# wine prefix too. The last line is
#
#   cross-check: N passed, N failed, N skipped
#
# and the exit status is non-zero if any step failed. Knobs: CROSS_PYTHONS (default
# "3.10 3.11 3.12 3.13 3.14 3.15"), CROSS_WIN_CHECK_ONLY (default none: versions
# to `cargo check` only, rather than link, for Windows), CROSS_TARGET_DIR.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$ROOT/target/cross}"
read -r -a PYTHONS <<<"${CROSS_PYTHONS:-3.10 3.11 3.12 3.13 3.14 3.15}"
WIN_CHECK_ONLY=" ${CROSS_WIN_CHECK_ONLY-} "
WIN=x86_64-pc-windows-gnu
MSVC=x86_64-pc-windows-msvc
MACS=(x86_64-apple-darwin aarch64-apple-darwin)
# pyo3's cross-compilation mode takes the version from here; nothing of a host
# interpreter's configuration may leak in.
unset PYO3_CROSS_LIB_DIR PYO3_CONFIG_FILE PYO3_PYTHON

PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()

# step NAME COMMAND...: runs one step, timed, and counts it.
step() {
    local name=$1 t0 rc
    shift
    echo "==== $name"
    t0=$(date +%s)
    "$@"
    rc=$?
    if [ "$rc" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        echo "==== ok: $name ($(($(date +%s) - t0)) s)"
    else
        FAILED=$((FAILED + 1))
        FAILURES+=("$name")
        echo "==== FAILED (exit $rc): $name ($(($(date +%s) - t0)) s)"
    fi
}

skip() { # NAME REASON (a failure under REQUIRE_ALL_PYTHONS=1, as in CI)
    if [ "${REQUIRE_ALL_PYTHONS:-0}" = 1 ]; then
        FAILED=$((FAILED + 1))
        FAILURES+=("$1 (required: $2)")
        echo "==== FAILED (required, cannot run): $1: $2"
        return
    fi
    SKIPPED=$((SKIPPED + 1))
    echo "!!!! SKIPPING $1: $2"
}

START=$(date +%s)
# The machine is shared: everything below runs niced.
renice -n 10 $$ >/dev/null

# ---- rustup targets
missing=()
installed=$(rustup target list --installed)
for t in "$WIN" "$MSVC" "${MACS[@]}"; do
    grep -qx "$t" <<<"$installed" || missing+=("$t")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "rustup target add ${missing[*]}" rustup target add "${missing[@]}"
fi

# ---- Windows x64 under wine
have_win_tools() {
    command -v x86_64-w64-mingw32-gcc >/dev/null && command -v wine >/dev/null
}
if ! have_win_tools && [ "$(id -u)" -eq 0 ]; then
    # wine64 with its recommends: they bring the `wine` launcher (package wine), and this
    # is the set that was measured (docs/platforms.md).
    apt_install() {
        apt-get update -qq || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            gcc-mingw-w64-x86-64 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y wine64
    }
    step "apt-get install gcc-mingw-w64-x86-64 wine64" apt_install
fi
if have_win_tools; then
    export WINEPREFIX="$CARGO_TARGET_DIR/wine" WINEDEBUG=-all
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
    prepare_prefix() {
        if [ ! -e "$WINEPREFIX/system.reg" ]; then
            mkdir -p "$CARGO_TARGET_DIR" || return 1
            wineboot -i >/dev/null 2>&1 || return 1
            wineserver -w || return 1
        fi
        local sys32="$WINEPREFIX/drive_c/windows/system32"
        # A wine that has the DLL (9.0 and later) puts a placeholder for it into every
        # prefix it creates; only an older one needs ours.
        if [ ! -e "$sys32/bcryptprimitives.dll" ]; then
            x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" \
                tools/wine/bcryptprimitives.c -ladvapi32 || return 1
        fi
    }
    step "wine prefix ($WINEPREFIX)" prepare_prefix
    step "$WIN: greenlet-core tests under wine (debug)" \
        env RUST_TEST_THREADS=1 cargo test -p greenlet-core --target "$WIN"
    step "$WIN: greenlet-core tests under wine (release)" \
        env RUST_TEST_THREADS=1 cargo test -p greenlet-core --target "$WIN" --release
else
    skip "$WIN tests under wine" \
        "x86_64-w64-mingw32-gcc or wine missing, and not root to apt-get install gcc-mingw-w64-x86-64 wine64"
fi
# Neither clippy nor cargo check links: they run with or without mingw.
step "$WIN: clippy greenlet-core" \
    cargo clippy -p greenlet-core --all-targets --target "$WIN" -- -D warnings
for v in "${PYTHONS[@]}"; do
    if command -v x86_64-w64-mingw32-gcc >/dev/null && [[ "$WIN_CHECK_ONLY" != *" $v "* ]]; then
        step "$WIN: greenlet-py built and linked (CPython $v)" \
            env PYO3_CROSS_PYTHON_VERSION="$v" cargo build -p greenlet-py --target "$WIN"
    else
        step "$WIN: cargo check greenlet-py (CPython $v)" \
            env PYO3_CROSS_PYTHON_VERSION="$v" cargo check -p greenlet-py --target "$WIN"
    fi
done

# ---- Windows x64, MSVC flavour: nothing links or runs
step "$MSVC: greenlet-core rlib (assembled, not linked)" \
    cargo build -p greenlet-core --lib --target "$MSVC"
step "$MSVC: clippy greenlet-core" \
    cargo clippy -p greenlet-core --all-targets --target "$MSVC" -- -D warnings
for v in "${PYTHONS[@]}"; do
    step "$MSVC: cargo check greenlet-py (CPython $v)" \
        env PYO3_CROSS_PYTHON_VERSION="$v" cargo check -p greenlet-py --target "$MSVC"
done

# ---- macOS
for t in "${MACS[@]}"; do
    step "$t: greenlet-core rlib (assembled, not linked)" \
        cargo build -p greenlet-core --lib --target "$t"
    step "$t: cargo check greenlet-core tests" \
        cargo check -p greenlet-core --tests --target "$t"
    for v in "${PYTHONS[@]}"; do
        step "$t: cargo check greenlet-py (CPython $v)" \
            env PYO3_CROSS_PYTHON_VERSION="$v" cargo check -p greenlet-py --target "$t"
    done
done

echo
echo "cross-check took $(($(date +%s) - START)) s"
for f in "${FAILURES[@]}"; do
    echo "  failed: $f"
done
echo "cross-check: $PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
