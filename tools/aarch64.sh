#!/usr/bin/env bash
# greenlet-rs on aarch64 Linux, from an x86_64 Debian/Ubuntu host: cross-built,
# run under qemu-user with Debian's arm64 CPython.
#
#   tools/aarch64.sh [test] [X.Y ...]   every suite on each arm64 CPython (default 3.11 3.14)
#   tools/aarch64.sh check              exit 0 if the legs can run here, else say why (exit 1)
#   tools/aarch64.sh setup              install what is missing (root: apt-get; rustup target)
#   tools/aarch64.sh python X.Y         the arm64 CPython X.Y (sysroot, cached); prints a
#                                       host-runnable wrapper of it
#   tools/aarch64.sh venv X.Y [WHEEL]   the test venv .venv-test-aarch64-X.Y.Z with the test
#                                       tools and greenlet-rs (WHEEL, else built here); prints
#                                       its python
#   tools/aarch64.sh suite X.Y SUITE    one suite on the venv: python | cython | layout | upstream
#   tools/aarch64.sh baseline X.Y       upstream greenlet 3.5.6's own aarch64 wheel on upstream's
#                                       suite (venv .venv-upstream-aarch64-X.Y.Z), for comparison
#
# What it needs, installed by `setup` when missing (apt-get only as root; only these
# packages): qemu-user (or qemu-user-static), gcc-aarch64-linux-gnu,
# g++-aarch64-linux-gnu, libc6-dev-arm64-cross, and rustup's aarch64-unknown-linux-gnu
# target. Nothing else of the system changes: no dpkg architecture is added and no
# binfmt_misc entry is registered.
#
# The arm64 CPython: Debian's packages (3.11 from bookworm, 3.12+ from sid),
# fetched with `apt-get download` through a private apt configuration (lists,
# cache and empty dpkg status of its own, APT::Architecture arm64; the mirror is
# the Debian one of this machine's apt sources, the Release files checked with
# the system's Debian archive keyring; only the system's Acquire::* settings are
# copied) and unpacked with `dpkg-deb -x` into a sysroot cached under
# ~/.cache/greenlet-rs/arm64/<suite>-X.Y. The absolute paths of its sysconfig data
# are prefixed with the sysroot (the sysroot must stay where it is), so the host's
# cross gcc and pyo3 see the arm64 headers.
#
# How arm64 code runs: every arm64 python is a small shell script that runs
# `qemu-aarch64 -L SYSROOT -0 "$0" SYSROOT/usr/bin/pythonX.Y "$@"`, so
# sys.executable is the script and subprocesses of the tests (which start
# sys.executable) run under qemu too. That needs no binfmt_misc; where binfmt is
# registered, QEMU_LD_PREFIX (exported for the suites) lets arm64 programs the
# tests start themselves find their libraries as well. QEMU_CPU=max,pauth-impdef=on:
# sid's binaries are built with pointer authentication, which qemu's default
# (QARMA5) emulates 8x slower.
#
# Knobs: AARCH64_PYTHONS (default "3.11 3.14"), AARCH64_WHEEL_DIR (install the
# wheel for the venv's version from there instead of building one),
# ARM64_MIRROR (a Debian mirror URL, when the apt sources name none),
# SUITE_TIMEOUT and UPSTREAM_SUITE_ARGS / PYTEST_ARGS (as tools/test.sh).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${GREENLET_RS_CACHE:-$HOME/.cache/greenlet-rs}"
ARM="$CACHE/arm64"
TARGET=aarch64-unknown-linux-gnu
export QEMU_CPU="${QEMU_CPU:-max,pauth-impdef=on}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { echo "aarch64: $*" >&2; }
die() { say "error: $*"; exit 1; }

qemu_bin() {
    command -v qemu-aarch64-static || command -v qemu-aarch64
}

# Why the legs cannot run here (empty: they can), without installing anything.
why_not() {
    [ "$(uname -m)" = x86_64 ] || { echo "only x86_64 hosts are supported (this is $(uname -m))"; return; }
    local t
    for t in apt-get apt-config apt-cache dpkg-deb cargo python3; do
        command -v "$t" >/dev/null || { echo "'$t' is not installed"; return; }
    done
    local missing=()
    qemu_bin >/dev/null || missing+=(qemu-user)
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
    command -v aarch64-linux-gnu-g++ >/dev/null || missing+=(g++-aarch64-linux-gnu)
    [ -e /usr/aarch64-linux-gnu/include/stdio.h ] || missing+=(libc6-dev-arm64-cross)
    if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" != 0 ]; then
        echo "not root, and ${missing[*]} not installed (apt-get install ${missing[*]})"
        return
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
        command -v rustup >/dev/null || { echo "no rustup to add the $TARGET target"; return; }
    fi
}

setup() {
    local why
    why="$(why_not)"
    [ -z "$why" ] || die "$why"
    local pkgs=()
    qemu_bin >/dev/null || pkgs+=(qemu-user-static)
    command -v aarch64-linux-gnu-gcc >/dev/null || pkgs+=(gcc-aarch64-linux-gnu)
    command -v aarch64-linux-gnu-g++ >/dev/null || pkgs+=(g++-aarch64-linux-gnu)
    [ -e /usr/aarch64-linux-gnu/include/stdio.h ] || pkgs+=(libc6-dev-arm64-cross)
    if [ ${#pkgs[@]} -gt 0 ]; then
        say "apt-get install ${pkgs[*]}"
        { apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 \
            install -y --no-install-recommends "${pkgs[@]}"; } >&2 || die "apt-get install ${pkgs[*]} failed"
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
        say "rustup target add $TARGET"
        rustup target add "$TARGET" >&2 || die "rustup target add $TARGET failed"
    fi
}

# ------------------------------------------------------------ sysroots --
suite_of() { # X.Y -> the Debian suite its arm64 build comes from
    case "$1" in
    3.11) echo bookworm ;;
    3.9 | 3.10) echo "" ;;
    *) echo sid ;;
    esac
}

debian_mirror() {
    if [ -n "${ARM64_MIRROR:-}" ]; then
        echo "${ARM64_MIRROR%/}"
        return
    fi
    apt-get indextargets --format '$(REPO_URI)|$(RELEASE)|$(ORIGIN)' 2>/dev/null |
        awk -F'|' '$3 == "Debian" && $2 !~ /-/ { sub(/\/$/, "", $1); print $1; exit }'
}

# private_apt DIR SUITE ARCH: write DIR/apt.conf, a private apt for one suite and arch.
private_apt() {
    local a="$1" suite="$2" arch="$3" mirror keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian mirror in the apt sources; set ARM64_MIRROR"
    [ -r "$keyring" ] || die "$keyring is needed to check the Debian release files"
    mkdir -p "$a/parts" "$a/lists/partial" "$a/cache/archives/partial" "$a/log"
    : >"$a/status"
    echo "deb [signed-by=$keyring] $mirror $suite main" >"$a/sources.list"
    {
        # Only the system's Acquire settings (proxies, Check-Valid-Until for a frozen mirror, ...).
        apt-config dump 2>/dev/null | grep -E '^Acquire::' |
            grep -vE '^Acquire::(IndexTargets|cdrom|Languages|PDiffs)' || true
        cat <<EOF
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$a/parts";
Dir::Etc::sourcelist "$a/sources.list";
Dir::Etc::sourceparts "$a/parts";
Dir::Etc::preferences "$a/preferences";
Dir::Etc::preferencesparts "$a/parts";
Dir::State "$a";
Dir::State::lists "$a/lists";
Dir::State::status "$a/status";
Dir::Cache "$a/cache";
Dir::Log "$a/log";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Acquire::Languages "none";
Acquire::PDiffs "false";
EOF
        if [ "$(id -u)" = 0 ]; then echo 'APT::Sandbox::User "root";'; fi
    } >"$a/apt.conf"
}

# make_sysroot X.Y: Debian's arm64 CPython X.Y unpacked into $ARM/<suite>-X.Y.
make_sysroot() {
    local v="$1" suite s work a want deps p
    suite="$(suite_of "$v")"
    [ -n "$suite" ] || die "Debian has no arm64 CPython $v (3.11 is bookworm's, 3.12+ sid's)"
    s="$ARM/$suite-$v"
    [ -f "$s/.complete" ] && return 0
    mkdir -p "$ARM"
    work="$(mktemp -d "${TMPDIR:-/tmp}/greenlet-arm64.XXXXXX")"
    a="$work/apt"
    private_apt "$a" "$suite" arm64
    say "fetching Debian $suite's arm64 CPython $v into $s"
    APT_CONFIG="$a/apt.conf" apt-get -q update >"$work/log" 2>&1 ||
        { cat "$work/log" >&2; rm -rf "$work"; die "apt-get update (Debian $suite, arm64) failed"; }
    want=("python$v" "python$v-minimal" "python$v-dev" "python$v-venv" "libpython$v" "libpython$v-minimal"
        "libpython$v-stdlib" "libpython$v-dev" python3-pip-whl python3-setuptools-whl libstdc++6 zlib1g)
    # The shared libraries they need (lib*, gcc-*-base, zlib1g), not the rest
    # of their dependency closure (perl, debconf, tzdata, ...).
    deps="$(APT_CONFIG="$a/apt.conf" apt-cache depends --recurse --no-recommends --no-suggests \
        --no-conflicts --no-breaks --no-replaces --no-enhances "${want[@]}" 2>>"$work/log" |
        grep -vE '^ |<' | grep -E '^(lib|gcc-[0-9]+-base$|zlib1g$)' | grep -vE -- '-(dev|dbg|doc)$' | sort -u)"
    # shellcheck disable=SC2086
    mkdir -p "$work/debs" && (cd "$work/debs" && APT_CONFIG="$a/apt.conf" apt-get -q download \
        $(printf '%s\n' "${want[@]}" $deps | sort -u)) >>"$work/log" 2>&1 ||
        { cat "$work/log" >&2; rm -rf "$work"; die "apt-get download (Debian $suite, arm64) failed"; }
    rm -rf "$s"
    mkdir -p "$s"
    for p in "$work"/debs/*.deb; do dpkg-deb -x "$p" "$s"; done
    say "  $(ls "$work"/debs | wc -l) packages, $(du -sh "$s" | cut -f1)"
    # merged /usr (sid): PT_INTERP is /lib/ld-linux-aarch64.so.1.
    [ -e "$s/lib" ] || ln -s usr/lib "$s/lib"
    # Absolute symlinks would point into the host.
    find "$s" -type l -lname '/*' | while read -r l; do
        ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$s$(readlink "$l")")" "$l"
    done
    # Debian's pyconfig.h dispatches on the compiler's multiarch: use the arm64 one.
    local inc="$s/usr/include/python$v"
    if [ -f "$s/usr/include/aarch64-linux-gnu/python$v/pyconfig.h" ]; then
        cp -f "$s/usr/include/aarch64-linux-gnu/python$v/pyconfig.h" "$inc/pyconfig.h"
    fi
    # /usr and /etc in the sysconfig data -> the sysroot's, for the host's cross gcc and pyo3.
    python3 - "$s" "$s"/usr/lib/python"$v"/_sysconfigdata_*.py <<'PY' || die "rewriting the sysconfig data failed"
import re, sys
root = sys.argv[1]
for f in sys.argv[2:]:
    text = open(f).read()
    text = re.sub(r"(?<![\w./-])/(usr|etc)(?=[/'\s]|$)", lambda m: root + m.group(0), text)
    open(f, "w").write(text)
PY
    rm -rf "$work"
    "$(qemu_bin)" -L "$s" "$s/usr/bin/python$v" -c 'import ssl, ctypes, zlib, sqlite3, decimal' ||
        die "the arm64 python$v in $s does not run"
    echo "Debian $suite arm64 CPython $("$(qemu_bin)" -L "$s" "$s/usr/bin/python$v" -c 'import sys; print(sys.version.split()[0])')" \
        >"$s/.complete"
    say "  $(cat "$s/.complete")"
}

sysroot_of() { echo "$ARM/$(suite_of "$1")-$1"; }

# write_wrapper FILE SYSROOT X.Y: a host-runnable arm64 python.
write_wrapper() {
    local q
    q="$(qemu_bin)"
    # argv[0] is the script (sys.executable: subprocesses run under qemu too);
    # for the bare interpreter, its real path (so sys.prefix is the sysroot's).
    local argv0='"$0"'
    [ "${4:-}" = bare ] && argv0="$2/usr/bin/python$3"
    printf '#!/bin/sh\n# arm64 CPython %s under qemu-user (tools/aarch64.sh)\nexec %s -L %s -0 %s %s/usr/bin/python%s "$@"\n' \
        "$3" "$q" "$2" "$argv0" "$2" "$3" >"$1"
    chmod +x "$1"
}

cmd_python() {
    local v="$1" s
    make_sysroot "$v"
    s="$(sysroot_of "$v")"
    write_wrapper "$s/python" "$s" "$v" bare
    echo "$s/python"
}

# ------------------------------------------------------------- building --
# build_wheel X.Y OUTDIR: greenlet-rs for arm64 CPython X.Y, tagged manylinux_2_28
# through tools/build-wheels.sh's glibc 2.28 sysroot.
build_wheel() {
    local v="$1" out="$2"
    PYTHONS="$v" ARCHS=aarch64 WHEEL_OUT="$out" bash "$ROOT/tools/build-wheels.sh" >&2
}

# wrapper_venv X.Y DIR: a venv of the arm64 CPython X.Y whose python runs under qemu.
wrapper_venv() {
    local v="$1" venv="$2" s
    s="$(sysroot_of "$v")"
    if [ ! -x "$venv/bin/python" ] || ! grep -qx "home = $s/usr/bin" "$venv/pyvenv.cfg" ||
        ! "$venv/bin/python" -c '' 2>/dev/null; then
        rm -rf "$venv"
        say "making $venv"
        "$s/python" -m venv --without-pip "$venv" || die "venv failed"
        rm -f "$venv/bin/python" "$venv/bin/python3" "$venv/bin/python$v"
        write_wrapper "$venv/bin/python" "$s" "$v"
        ln -s python "$venv/bin/python3"
        ln -s python "$venv/bin/python$v"
        "$venv/bin/python" -m ensurepip --upgrade --default-pip >&2 || { rm -rf "$venv"; die "ensurepip failed"; }
    fi
}

full_version() { sed -n 's/.*CPython //p' "$(sysroot_of "$1")/.complete"; }

cmd_venv() {
    local v="$1" wheel="${2:-}" venv py
    cmd_python "$v" >/dev/null || return 1
    venv="$ROOT/.venv-test-aarch64-$(full_version "$v")"
    wrapper_venv "$v" "$venv"
    py="$venv/bin/python"
    if ! "$py" -c 'import pytest, Cython, objgraph, psutil, setuptools' 2>/dev/null; then
        "$py" -m pip install -q pytest cython objgraph psutil setuptools >&2 || die "installing the test tools failed"
    fi
    if [ -z "$wheel" ]; then
        local dir="${AARCH64_WHEEL_DIR:-}"
        if [ -z "$dir" ]; then
            dir="$ROOT/target/aarch64-test-wheels/$v"
            rm -rf "$dir"
            build_wheel "$v" "$dir" || die "building the cp${v/./} aarch64 wheel failed"
        fi
        wheel="$(ls "$dir"/greenlet-*-cp"${v/./}"-*aarch64*.whl 2>/dev/null | head -n 1)"
        [ -n "$wheel" ] || die "no cp${v/./} aarch64 wheel in $dir"
    fi
    say "installing $(basename "$wheel")"
    "$py" -m pip install -q --force-reinstall --no-deps "$wheel" >&2 || die "pip install $wheel failed"
    "$py" -c 'import greenlet; assert greenlet.greenlet(lambda: 42).switch() == 42' || die "greenlet does not switch"
    echo "$py"
}

# Shims for tools/layout-check/run.sh, which builds natively: `cargo` adds
# --target and puts the cdylib where run.sh looks, `cc` is the cross gcc and
# wraps its output in qemu.
layout_shims() {
    local d="$1" s="$2" real_cargo
    real_cargo="$(command -v cargo)"
    mkdir -p "$d"
    cat >"$d/cargo" <<EOF
#!/bin/sh
set -e
"$real_cargo" "\$@" --target $TARGET
mkdir -p "\$CARGO_TARGET_DIR/debug"
cp -f "\$CARGO_TARGET_DIR/$TARGET/debug/liblayout_check.so" "\$CARGO_TARGET_DIR/debug/"
EOF
    cat >"$d/cc" <<EOF
#!/bin/sh
# run.sh's offsets.c: cross gcc, and the executable it makes (-o OUT) becomes a
# script running it under qemu. Anything else (cargo links build scripts with cc): the host's.
case "\$*" in *offsets.c*) ;; *) PATH="$PATH" exec cc "\$@" ;; esac
out=
prev=
for a in "\$@"; do [ "\$prev" = -o ] && out="\$a"; prev="\$a"; done
aarch64-linux-gnu-gcc "\$@" || exit \$?
mv "\$out" "\$out.arm64"
printf '#!/bin/sh\nexec %s -L %s "%s" "\$@"\n' "$(qemu_bin)" "$s" "\$out.arm64" >"\$out"
chmod +x "\$out"
EOF
    chmod +x "$d/cargo" "$d/cc"
}

cmd_suite() {
    local v="$1" suite="$2" s full py
    s="$(sysroot_of "$v")"
    [ -f "$s/.complete" ] || die "no arm64 CPython $v yet (tools/aarch64.sh venv $v)"
    full="$(sed -n 's/.*CPython //p' "$s/.complete")"
    py="$ROOT/.venv-test-aarch64-$full/bin/python"
    [ -x "$py" ] || die "no venv for $v yet (tools/aarch64.sh venv $v)"
    export QEMU_LD_PREFIX="$s"
    export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export PYTHONFAULTHANDLER=1
    local extra=()
    case "$suite" in
    python | cython)
        read -r -a extra <<<"${PYTEST_ARGS:-}"
        exec "$py" -m pytest -q -p no:cacheprovider "${extra[@]}" "tests/$suite"
        ;;
    layout)
        local shims="$ROOT/target/aarch64-shims/$v"
        layout_shims "$shims" "$s"
        PATH="$shims:$PATH" PYO3_CROSS_LIB_DIR="$s/usr/lib/python$v" \
            LAYOUT_CHECK_TARGET_DIR="$ROOT/target/layout-check-aarch64" \
            exec bash tools/layout-check/run.sh "$py"
        ;;
    upstream)
        read -r -a extra <<<"${UPSTREAM_SUITE_ARGS:-}"
        exec "$py" tools/upstream_suite.py "${extra[@]}"
        ;;
    upstream-isolated)
        read -r -a extra <<<"${UPSTREAM_SUITE_ARGS:-}"
        exec "$py" tools/upstream_suite.py --isolate --no-prepare "${extra[@]}"
        ;;
    *) die "unknown suite '$suite' (python, cython, layout, upstream)" ;;
    esac
}

# The baseline: upstream greenlet 3.5.6's own aarch64 wheel on upstream's suite.
cmd_baseline() {
    local v="$1" venv
    cmd_python "$v" >/dev/null || return 1
    venv="$ROOT/.venv-upstream-aarch64-$(full_version "$v")"
    wrapper_venv "$v" "$venv"
    "$venv/bin/python" -m pip install -q --only-binary=:all: greenlet==3.5.6 objgraph psutil setuptools >&2 ||
        die "installing upstream's greenlet 3.5.6 wheel failed"
    export QEMU_LD_PREFIX="$(sysroot_of "$v")" CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ PYTHONFAULTHANDLER=1
    "$venv/bin/python" -m pip list 2>/dev/null | grep -i '^greenlet ' >&2
    exec "$venv/bin/python" tools/upstream_suite.py --allow-upstream
}

# Standalone: every suite on each version, with a summary.
cmd_test() {
    local versions=("$@") v suite rows=() failed=0 start log counts
    [ ${#versions[@]} -gt 0 ] || read -r -a versions <<<"${AARCH64_PYTHONS:-3.11 3.14}"
    setup
    local logs="$ROOT/target/test-logs"
    mkdir -p "$logs"
    for v in "${versions[@]}"; do
        start=$SECONDS
        if ! "$0" venv "$v" >"$logs/aarch64-$v-install.log" 2>&1; then
            cat "$logs/aarch64-$v-install.log"
            rows+=("aarch64-$v install FAILED")
            failed=1
            continue
        fi
        rows+=("aarch64-$v install ok ($((SECONDS - start))s)")
        for suite in python cython layout upstream; do
            log="$logs/aarch64-$v-$suite.log"
            start=$SECONDS
            timeout --kill-after=30 "${SUITE_TIMEOUT:-1500}" "$0" suite "$v" "$suite" 2>&1 | tee "$log"
            local rc=${PIPESTATUS[0]}
            case "$suite" in
            python | cython)
                counts="$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error)' "$log" | tail -n 1)" ;;
            layout) counts="$(grep -E '^layout-check: [0-9]+ offsets' "$log" | tail -n 1)" ;;
            upstream) counts="$(grep -E '^upstream-suite: [0-9]+ passed' "$log" | tail -n 1)" ;;
            esac
            [ "$rc" -eq 0 ] && [ -n "$counts" ] || failed=1
            rows+=("aarch64-$v $suite rc=$rc ($((SECONDS - start))s): ${counts:-no result line}")
        done
    done
    echo
    printf '%s\n' "${rows[@]}"
    [ "$failed" = 0 ] && echo "aarch64: all passed" || echo "aarch64: FAILED"
    return "$failed"
}

case "${1:-test}" in
check)
    why="$(why_not)"
    [ -z "$why" ] || { echo "$why"; exit 1; }
    ;;
setup) setup ;;
python) shift; cmd_python "${1:?X.Y}" ;;
venv) shift; setup; cmd_venv "${1:?X.Y}" "${2:-}" ;;
suite) shift; cmd_suite "${1:?X.Y}" "${2:?suite}" ;;
baseline) shift; setup; cmd_baseline "${1:?X.Y}" ;;
test) shift; cmd_test "$@" ;;
[0-9]*) cmd_test "$@" ;;
-h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
*) die "unknown command '$1' (--help)" ;;
esac
