#!/usr/bin/env bash
# Checks the type stubs (python/greenlet/*.pyi) against the installed greenlet with
# mypy's stubtest:
#
#   tools/stubtest.sh /path/to/venv/bin/python
#
# The interpreter must belong to a venv that has greenlet-rs installed (tools/test.sh
# makes such venvs). mypy is installed into that venv with pip (from pip's cache after
# the first time) when it is missing. Each module below counts as passed when stubtest
# reports nothing for it. The last line is
#
#   stubtest: N passed, N failed, 0 skipped
#
# and the exit status is non-zero if any module failed. Knobs: MYPY_SPEC (the pip
# requirement for mypy), STUBTEST_ARGS (extra arguments, word-split).
set -uo pipefail

# The modules counted. stubtest is given only the package: it checks the submodules
# itself, and naming greenlet._greenlet too makes mypy see that stub twice.
MODULES=(greenlet greenlet._greenlet)
# typing_extensions.disjoint_base (used by the stubs, as by typeshed's) needs mypy 1.18.
MYPY_SPEC="${MYPY_SPEC:-mypy>=1.18,<3}"
read -r -a EXTRA <<<"${STUBTEST_ARGS:-}"

summary() { # passed failed
    echo "stubtest: $1 passed, $2 failed, 0 skipped"
}

if [ $# -ne 1 ]; then
    echo "usage: $0 PYTHON   (the interpreter of a venv with greenlet installed)" >&2
    exit 2
fi
py="$1"
if ! "$py" -c 'import greenlet._greenlet' 2>/dev/null; then
    echo "stubtest: greenlet is not importable with $py" >&2
    summary 0 "${#MODULES[@]}"
    exit 1
fi
if ! "$py" -c 'import mypy.stubtest' 2>/dev/null; then
    if ! "$py" -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
        echo "stubtest: $py has no mypy and is not the interpreter of a venv; not installing into it" >&2
        summary 0 "${#MODULES[@]}"
        exit 2
    fi
    echo "stubtest: installing $MYPY_SPEC into $("$py" -c 'import sys; print(sys.prefix)')"
    if ! "$py" -m pip install -q --disable-pip-version-check "$MYPY_SPEC"; then
        echo "stubtest: could not install mypy" >&2
        summary 0 "${#MODULES[@]}"
        exit 1
    fi
fi

# Run outside the checkout. The installed stubs are copied into a stub-only package on
# MYPYPATH, so that mypy reads them and nothing else of the installed package: upstream's
# test suite, which tools/upstream_suite.py unpacks into it as greenlet/tests, is not ours
# to type-check. The runtime side is still the installed package.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pkg="$("$py" -c 'import os, greenlet; print(os.path.dirname(greenlet.__file__))')"
mkdir -p "$work/stubs/greenlet"
for f in __init__.pyi _greenlet.pyi py.typed; do
    if [ ! -f "$pkg/$f" ]; then
        echo "stubtest: $pkg/$f is missing from the installed package" >&2
        summary 0 "${#MODULES[@]}"
        exit 1
    fi
    cp "$pkg/$f" "$work/stubs/greenlet/"
done
export MYPYPATH="$work/stubs"
args=()
if [ -d "$pkg/tests" ]; then
    # Upstream's suite, put there by tools/upstream_suite.py: not part of greenlet-rs.
    echo 'greenlet\.tests(\..*)?' >"$work/allowlist"
    args+=(--allowlist "$work/allowlist")
fi
echo "stubtest: $("$py" -m mypy --version) on $("$py" -c 'import sys; print(sys.version.split()[0])')," \
    "greenlet $("$py" -c 'import greenlet; print(greenlet.__version__)')"
(cd "$work" && "$py" -m mypy.stubtest "${args[@]}" "${EXTRA[@]}" greenlet) 2>&1 | tee "$work/out"
rc=${PIPESTATUS[0]}

# Blame each "error: NAME ..." line on the longest module name that NAME starts with.
# Anything else that makes stubtest fail (a stub that does not parse, a crash) fails all.
failed_modules="$(
    awk -v mods="${MODULES[*]}" '
        BEGIN { n = split(mods, m, " ") }
        /^error: / {
            name = $2; best = ""
            for (i = 1; i <= n; i++)
                if ((name == m[i] || index(name, m[i] ".") == 1) && length(m[i]) > length(best)) best = m[i]
            if (best == "") unknown = 1; else bad[best] = 1
        }
        END {
            for (i = 1; i <= n; i++) if (unknown || (m[i] in bad)) print m[i]
        }' "$work/out"
)"
failed=$(printf '%s' "$failed_modules" | grep -c . || true)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=${#MODULES[@]}
fi
passed=$((${#MODULES[@]} - failed))
[ "$failed" -gt 0 ] && [ "$rc" -eq 0 ] && rc=1
summary "$passed" "$failed"
exit "$rc"
