#!/usr/bin/env bash
# Builds one manylinux wheel per CPython and architecture into dist/:
#
#   tools/build-wheels.sh                       # cp310 ... cp315, x86_64 and aarch64
#   PYTHONS="3.11 debian-3.14" tools/build-wheels.sh
#   ARCHS=x86_64 tools/build-wheels.sh          # one architecture
#
# Interpreters are named as for tools/test.sh (X.Y from pyenv, debian-X.Y from
# ../shared/tools/get-cpython, or a path). For x86_64, one that is not there is
# skipped, and the skipped ones are listed at the end; no interpreter at all is
# an error. aarch64 wheels are cross-compiled (rustup's aarch64-unknown-linux-gnu
# target, Debian's gcc-aarch64-linux-gnu as the linker; `tools/aarch64.sh setup`
# installs both) and need no interpreter: maturin takes the X.Y of each name
# (a path is asked for its version) and uses the sysconfig it bundles for
# aarch64 Linux CPython. tools/aarch64.sh tests them under qemu.
# maturin and auditwheel are installed into a venv under ~/.cache/greenlet-rs/.
#
# The wheels are tagged manylinux_2_28_<arch> (glibc 2.28 or newer), checked by
# maturin while tagging and by `auditwheel show` after, whatever glibc this host
# has. A plain link here would bind the extension to the host glibc's newest
# symbol versions (Rust's std asks for stat64/fstat64@GLIBC_2.33, pthread_key_*
# @GLIBC_2.34, gettid@GLIBC_2.30 on Debian 12). So it is linked against a sysroot
# instead (cached under ~/.cache/greenlet-rs/):
#
#   * libc6, libc6-dev and libgcc-s1 of an older Debian release ($SYSROOT_SUITE,
#     default bullseye: glibc 2.31), fetched with `apt-get download` through a
#     private apt configuration (lists, cache and an empty dpkg status of its own;
#     the mirror is the Debian one of this machine's apt sources, the Release
#     files are checked with the system's Debian archive keyring) and unpacked
#     with `dpkg-deb -x`. Nothing of the system's apt or dpkg state changes.
#   * Its shared libraries (libc.so.6, libpthread.so.0, libm.so.6, ...) are
#     replaced by link stubs: the same soname and symbols, each symbol carrying
#     its newest version up to GLIBC_$GLIBC_MAX (2.28); newer symbols are left
#     out. Only the linker sees them; the wheel runs on the real glibc. A weak
#     reference to a left-out symbol (std's gettid) stays unversioned, and
#     std falls back to the syscall when the running glibc lacks it.
#   * The link still runs through the host's gcc and rust-lld, with libgcc_s
#     (the system unwinder, which C++ exceptions unwinding through greenlet
#     frames need) taken from the sysroot. Nothing of Zig's is used.
#
#   * For aarch64 the same, from Debian's arm64 packages of $SYSROOT_SUITE, linked
#     through the cross gcc. Not Zig (`maturin --zig`): its wheels carry LLVM's
#     unwinder inside the .so, and a C++ exception thrown through greenlet frames
#     then crashes (upstream's test_cpp).
#
# Knobs: PYTHONS, ARCHS (default "x86_64 aarch64"), SYSROOT_SUITE, GLIBC_MAX (the
# manylinux tag follows it), SYSROOT_MIRROR (a Debian mirror URL, when the apt
# sources name none), WHEEL_OUT (default dist).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHONS="${PYTHONS:-3.10 3.11 3.12 3.13 debian-3.14 debian-3.15}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
CACHE="${GREENLET_RS_CACHE:-$HOME/.cache/greenlet-rs}"
SYSROOT_SUITE="${SYSROOT_SUITE:-bullseye}"
GLIBC_MAX="${GLIBC_MAX:-2.28}"
TAG="manylinux_${GLIBC_MAX/./_}"
GET_CPYTHON="$ROOT/../shared/tools/get-cpython"
ARCHS="${ARCHS:-x86_64 aarch64}"
WHEEL_OUT="${WHEEL_OUT:-$ROOT/dist}"

say() { echo "build-wheels: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(uname -m)" = x86_64 ] || die "only x86_64 hosts are supported (this is $(uname -m))"
for tool in apt-get apt-config dpkg-deb readelf gcc python3; do
    command -v "$tool" >/dev/null || die "'$tool' is needed"
done
for arch in $ARCHS; do
    case "$arch" in
    x86_64) ;;
    aarch64)
        command -v aarch64-linux-gnu-gcc >/dev/null ||
            die "aarch64 wheels need gcc-aarch64-linux-gnu (tools/aarch64.sh setup installs it), or ARCHS=x86_64"
        rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu ||
            die "aarch64 wheels need rustup's aarch64-unknown-linux-gnu target (tools/aarch64.sh setup adds it), or ARCHS=x86_64"
        ;;
    *) die "unknown architecture '$arch' in ARCHS (x86_64, aarch64)" ;;
    esac
done

# Interpreter for a name, or nothing if it is not on this machine.
resolve() {
    local want="$1" cand
    case "$want" in
    debian-*)
        [ -x "$GET_CPYTHON" ] || return 0
        "$GET_CPYTHON" "${want#debian-}" | tail -n 1
        ;;
    */*) [ -x "$want" ] && echo "$want" ;;
    *)
        for cand in $(ls -d "$PYENV_ROOT"/versions/"$want".* 2>/dev/null | sort -V -r); do
            if [[ "$(basename "$cand")" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
                echo "$cand/bin/python"
                return
            fi
        done
        command -v "python$want" || true
        ;;
    esac
}

# ------------------------------------------------------------------ sysroot --
# Per architecture (use_arch): the sysroot, its multiarch lib dir, Debian's
# name of the architecture and the gcc that links for it.
use_arch() {
    ARCH="$1"
    case "$ARCH" in
    x86_64)
        SYSROOT="$CACHE/sysroot-$SYSROOT_SUITE-glibc$GLIBC_MAX"
        DEBARCH=amd64 XGCC=gcc
        ;;
    aarch64)
        SYSROOT="$CACHE/sysroot-$SYSROOT_SUITE-glibc$GLIBC_MAX-arm64"
        DEBARCH=arm64 XGCC=aarch64-linux-gnu-gcc
        ;;
    esac
    LIBDIR="lib/$ARCH-linux-gnu"
}

# Debian mirror from the apt sources: the first non-security, non-updates suite
# whose Release file says Origin: Debian.
debian_mirror() {
    if [ -n "${SYSROOT_MIRROR:-}" ]; then
        echo "${SYSROOT_MIRROR%/}"
        return
    fi
    apt-get indextargets --format '$(REPO_URI)|$(RELEASE)|$(ORIGIN)' 2>/dev/null |
        awk -F'|' '$3 == "Debian" && $2 !~ /-/ { sub(/\/$/, "", $1); print $1; exit }'
}

# Writes a link stub of the shared library $1 to $2 (see the header).
make_link_stub() {
    python3 - "$1" "$2" "$GLIBC_MAX" "$XGCC" "$ARCH" <<'PY'
import re, subprocess, sys

real, out, cap, gcc, arch = sys.argv[1:6]
# "@" starts a comment in some assemblers' syntax; GAS takes "%" there for aarch64.
at = "%" if arch == "aarch64" else "@"


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def glibc_version(name):
    m = re.fullmatch(r"GLIBC_(\d+(?:\.\d+)+)", name)
    return tuple(int(p) for p in m[1].split(".")) if m else None


cap = glibc_version("GLIBC_" + cap)
soname = re.search(r"\(SONAME\)\s+Library soname: \[([^]]+)\]", run("readelf", "-d", real))[1]
versions = sorted({v for v in re.findall(r"Name: (GLIBC_[0-9.]+)", run("readelf", "-V", "-W", real))
                   if glibc_version(v) <= cap}, key=glibc_version)
# name -> (version, type, binding, size) of its newest version up to the cap.
chosen = {}
for line in run("readelf", "--dyn-syms", "-W", real).splitlines():
    f = line.split()
    # Num: Value Size Type Bind Vis Ndx Name@[@]Version
    if len(f) < 8 or not f[0].endswith(":") or f[6] in ("UND", "ABS") or "@" not in f[7]:
        continue
    name, version = f[7].split("@", 1)
    version = version.lstrip("@")
    v = glibc_version(version)
    if v is None or v > cap:
        continue
    if name not in chosen or v > glibc_version(chosen[name][0]):
        chosen[name] = (version, f[3], f[4], int(f[2], 0))
asm = []
for name, (version, kind, bind, size) in sorted(chosen.items()):
    asm.append(f".weak {name}" if bind == "WEAK" else f".globl {name}")
    if kind in ("FUNC", "IFUNC"):
        asm += [".text", f".type {name},{at}function", f"{name}: ret"]
    elif kind == "TLS":
        asm += [f'.section .tbss,"awT",{at}nobits', f".type {name},{at}tls_object",
                f".size {name},{size}", f"{name}: .zero {max(size, 1)}"]
    else:
        asm += [".data", f".type {name},{at}object", f".size {name},{size}", f"{name}: .zero {max(size, 1)}"]
script, previous = [], ""
for version in versions:
    names = "".join(f" {n};" for n, c in sorted(chosen.items()) if c[0] == version)
    script.append(f"{version} {{{' global:' + names if names else ''} }}{' ' + previous if previous else ''};")
    previous = version
with open(out + ".s", "w") as f:
    f.write("\n".join(asm) + "\n")
with open(out + ".map", "w") as f:
    f.write("\n".join(script) + "\n")
subprocess.run([gcc, "-shared", "-nostdlib", "-o", out, out + ".s",
                "-Wl,--version-script=" + out + ".map", "-Wl,-soname," + soname], check=True)
print(f"{soname}: {len(chosen)} symbols up to {versions[-1]}")
PY
}

make_sysroot() {
    local work mirror keyring a p lib
    work="$(mktemp -d "${TMPDIR:-/tmp}/greenlet-sysroot.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    mirror="$(debian_mirror)"
    [ -n "$mirror" ] || die "no Debian mirror in the apt sources; set SYSROOT_MIRROR"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -r "$keyring" ] || die "$keyring is needed to check the Debian $SYSROOT_SUITE release files"
    say "making a glibc $GLIBC_MAX $DEBARCH link sysroot from Debian $SYSROOT_SUITE ($mirror)"
    a="$work/apt"
    mkdir -p "$a/parts" "$a/lists/partial" "$a/cache/archives/partial" "$a/log" "$work/debs" "$work/root"
    : >"$a/status"
    echo "deb [signed-by=$keyring] $mirror $SYSROOT_SUITE main" >"$a/sources.list"
    {
        # Only the system's Acquire settings (proxies, retries, ...).
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
APT::Architecture "$DEBARCH";
APT::Architectures { "$DEBARCH"; };
Acquire::Languages "none";
Acquire::PDiffs "false";
EOF
        if [ "$(id -u)" = 0 ]; then echo 'APT::Sandbox::User "root";'; fi
    } >"$a/apt.conf"
    APT_CONFIG="$a/apt.conf" apt-get -q update >"$work/log" 2>&1 ||
        { cat "$work/log" >&2; die "apt-get update for Debian $SYSROOT_SUITE failed"; }
    (cd "$work/debs" && APT_CONFIG="$a/apt.conf" apt-get -q download libc6 libc6-dev libgcc-s1) >>"$work/log" 2>&1 ||
        { cat "$work/log" >&2; die "apt-get download from Debian $SYSROOT_SUITE failed"; }
    for p in "$work"/debs/*.deb; do
        dpkg-deb -x "$p" "$work/root"
        say "  $(dpkg-deb -f "$p" Package Version | paste -sd' ')"
    done
    # Absolute symlinks (libpthread.so -> /lib/...) would point into the host.
    find "$work/root" -type l -lname '/*' | while read -r l; do
        ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$work/root$(readlink "$l")")" "$l"
    done
    for lib in libc.so.6 libpthread.so.0 libm.so.6 libdl.so.2 librt.so.1 libutil.so.1; do
        make_link_stub "$work/root/$LIBDIR/$lib" "$work/$lib" >&2
        rm -f "$work/root/$LIBDIR/$lib"
        cp "$work/$lib" "$work/root/$LIBDIR/$lib"
    done
    rm -rf "$SYSROOT"
    mkdir -p "$(dirname "$SYSROOT")"
    mv "$work/root" "$SYSROOT"
    echo "Debian $SYSROOT_SUITE $DEBARCH, glibc symbols up to $GLIBC_MAX" >"$SYSROOT/.complete"
    rm -rf "$work"
    trap - EXIT
}

# -------------------------------------------------------------------- build --
tools="$CACHE/maturin-venv"
if [ ! -x "$tools/bin/maturin" ] || [ ! -x "$tools/bin/auditwheel" ]; then
    [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check "maturin>=1.16,<2" "auditwheel>=6"
fi

# The X.Y of a PYTHONS entry, for cross builds (no interpreter needed), or nothing.
minor_of() {
    local want="$1" py
    case "$want" in
    debian-*d) ;; # a debug build: the same wheel as the release one
    debian-*) echo "${want#debian-}" ;;
    */*) [ -x "$want" ] && "$want" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null ;;
    [0-9]*) echo "$want" ;;
    esac
}

mkdir -p "$WHEEL_OUT"
status=0
skipped=()
for arch in $ARCHS; do
    use_arch "$arch"
    [ -f "$SYSROOT/.complete" ] || make_sysroot
    args=()
    if [ "$ARCH" = x86_64 ]; then
        for want in $PYTHONS; do
            py="$(resolve "$want")" || py=""
            if [ -n "$py" ] && [ -x "$py" ]; then
                args+=(-i "$py")
            else
                skipped+=("$want ($ARCH)")
                say "no interpreter for '$want': skipped"
            fi
        done
    else
        # Cross-compiled: maturin's bundled sysconfig of CPython X.Y for aarch64 Linux.
        declare -A done_minor=()
        for want in $PYTHONS; do
            v="$(minor_of "$want")"
            if [ -z "$v" ]; then
                skipped+=("$want ($ARCH)")
                say "no CPython version for '$want' ($ARCH): skipped"
                continue
            fi
            [ -n "${done_minor[$v]:-}" ] && continue
            done_minor[$v]=1
            args+=(-i "python$v")
        done
        unset done_minor
    fi
    [ ${#args[@]} -gt 0 ] || { say "error: no interpreter in PYTHONS ($PYTHONS) for $ARCH"; status=1; continue; }

    out="$ROOT/target/wheels-$TAG-$ARCH"
    rm -rf "$out"
    # The linker is pointed at the sysroot first (gcc's own search path starts with
    # the host's /usr/lib/x86_64-linux-gnu, which --sysroot alone does not change).
    # A target dir of its own keeps these link flags out of the everyday builds.
    link=(--sysroot="$SYSROOT" -B"$SYSROOT/usr/$LIBDIR" -L"$SYSROOT/usr/$LIBDIR" -L"$SYSROOT/$LIBDIR")
    flags="${RUSTFLAGS:-}"
    for f in "${link[@]}"; do flags+=" -C link-arg=$f"; done
    if ! RUSTFLAGS="$flags" CARGO_TARGET_DIR="$ROOT/target/$TAG" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        "$tools/bin/maturin" build --release --target "$ARCH-unknown-linux-gnu" \
        --compatibility "$TAG" --auditwheel check -o "$out" "${args[@]}"; then
        say "error: maturin build for $ARCH failed"
        status=1
        continue
    fi

    for whl in "$out"/*.whl; do
        echo
        "$tools/bin/auditwheel" show "$whl" | tee "$out/show.txt"
        if ! tr '\n' ' ' <"$out/show.txt" | grep -q "platform tag: \"${TAG}_$ARCH\""; then
            say "error: auditwheel does not give $(basename "$whl") the tag ${TAG}_$ARCH"
            status=1
        fi
        mv -f "$whl" "$WHEEL_OUT/"
        echo "$WHEEL_OUT/$(basename "$whl")"
    done
    rm -f "$out/show.txt"
done
if [ ${#skipped[@]} -gt 0 ]; then
    say "skipped (no interpreter): ${skipped[*]}"
fi
exit "$status"
