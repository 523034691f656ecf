#!/usr/bin/env bash
# run.sh PYTHON: compare greenlet-rs's mirrors of CPython structs with PYTHON's headers.
#
# 1. builds tools/layout-check (a cdylib over greenlet-py's `cpython` mirrors) for PYTHON
#    and asks it, through ctypes inside PYTHON, for offset_of!/size_of of every mirrored
#    field;
# 2. turns that list into a C program of offsetof/sizeof over the same C names, compiled
#    with Py_BUILD_CORE against PYTHON's (internal) headers;
# 3. diffs the two outputs. Exit status: 0 if identical, 1 on any difference (or if a
#    mirrored field does not exist in the headers: the C program then fails to compile).
set -euo pipefail
PY=${1:?usage: run.sh PYTHON}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tag=$("$PY" -c 'import sys; print("%d%d%s" % (sys.version_info[0], sys.version_info[1], getattr(sys, "abiflags", "")))')
target=${LAYOUT_CHECK_TARGET_DIR:-$here/target}/py$tag
inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')

PYO3_PYTHON="$PY" PYO3_BUILD_EXTENSION_MODULE=1 CARGO_TARGET_DIR="$target" \
    cargo build --quiet --manifest-path "$here/Cargo.toml"
"$PY" - "$target/debug/liblayout_check.so" > "$work/rust.txt" <<'PYEOF'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.layout_check_table.restype = ctypes.c_char_p
sys.stdout.write(lib.layout_check_table().decode())
PYEOF

{
    cat <<'CEOF'
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#define Py_BUILD_CORE 1
#if PY_VERSION_HEX >= 0x030B0000
#  include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#  include "internal/pycore_interpframe_structs.h"
#  include "internal/pycore_debug_offsets.h"
#elif PY_VERSION_HEX >= 0x030D0000
#  include "internal/pycore_runtime.h"
#endif
int main(void) {
CEOF
    while IFS='|' read -r kind cty field _; do
        case $kind in
            offset) printf '    printf("offset|%s|%s|%%zu\\n", offsetof(%s, %s));\n' "$cty" "$field" "$cty" "$field" ;;
            size) printf '    printf("size|%s|%%zu\\n", sizeof(%s));\n' "$cty" "$cty" ;;
        esac
    done < "$work/rust.txt"
    echo '    return 0;'
    echo '}'
} > "$work/offsets.c"
if ! cc -w -I"$inc" -I"$inc/internal" -o "$work/offsets" "$work/offsets.c" 2> "$work/cc.log"; then
    grep -E 'error' "$work/cc.log" | head -20 >&2
    echo "layout-check: a mirrored field does not exist in $PY's headers" >&2
    exit 1
fi
"$work/offsets" > "$work/c.txt"

if diff -u --label "C headers ($PY)" --label "Rust mirrors" "$work/c.txt" "$work/rust.txt"; then
    echo "layout-check: $(grep -c . "$work/rust.txt") offsets and sizes match for $PY"
else
    echo "layout-check: MISMATCH between greenlet-rs's mirrors and $PY's headers" >&2
    exit 1
fi
