#!/usr/bin/env bash
# Builds one wheel per CPython into dist/ with a single maturin call:
#
#   tools/build-wheels.sh                       # the interpreters `make test` uses
#   PYTHONS="3.11 debian-3.14" tools/build-wheels.sh
#
# Interpreters are named as for tools/test.sh (X.Y from pyenv, debian-X.Y from
# ../shared/tools/get-cpython, or a path). maturin is installed into a venv under
# ~/.cache/greenlet-rs/ on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHONS="${PYTHONS:-3.10 3.11 3.12 3.13 debian-3.14 debian-3.15}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
CACHE="${GREENLET_RS_CACHE:-$HOME/.cache/greenlet-rs}"

resolve() {
    local want="$1" cand
    case "$want" in
    debian-*) "$ROOT/../shared/tools/get-cpython" "${want#debian-}" | tail -n 1 ;;
    */*) echo "$want" ;;
    *)
        for cand in $(ls -d "$PYENV_ROOT"/versions/"$want".* 2>/dev/null | sort -V -r); do
            if [[ "$(basename "$cand")" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
                echo "$cand/bin/python"
                return
            fi
        done
        command -v "python$want"
        ;;
    esac
}

tools="$CACHE/maturin-venv"
if [ ! -x "$tools/bin/maturin" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install -q "maturin>=1.16,<2"
fi
args=()
for want in $PYTHONS; do
    py="$(resolve "$want")"
    [ -x "$py" ] || { echo "no interpreter for '$want'" >&2; exit 1; }
    args+=(-i "$py")
done
"$tools/bin/maturin" build --release -o dist "${args[@]}"
ls -l dist/*.whl
