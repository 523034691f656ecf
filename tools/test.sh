#!/usr/bin/env bash
# Every test of greenlet-rs, for each CPython in $PYTHONS.
#
#   tools/test.sh                      # the default interpreter list
#   PYTHONS="3.10 3.11 3.12 3.13 debian-3.14" tools/test.sh   (debian-X.Y: ../shared/tools/get-cpython;
#                                                               debian-3.14d: its debug build)
#   PYTHONS=/usr/bin/python3.12 tools/test.sh
#
# $PYTHONS holds interpreter paths or versions; a version is looked up under
# $PYENV_ROOT/versions first, then as pythonX.Y on PATH. For each one this
# makes (or reuses) the venv .venv-test-X.Y.Z in the repo root, installs the
# test tools and builds and installs greenlet-rs into it once. Then it runs
# the Rust tests of greenlet-core once (debug and release), and per
# interpreter pytest on tests/python and on tests/cython, and upstream
# greenlet's suite (tools/upstream_suite.py).
#
# It keeps going after a failure, prints a summary table, and exits non-zero
# if anything failed. Each suite's full output is also kept in
# target/test-logs/. A suite that crashes (no result line) is run a second
# time in crash-proof form (tools/pytest_isolated.py, upstream_suite.py --isolate) so
# the table still has counts; the crash itself stays a failure.
#
# Knobs: SUITE_TIMEOUT (seconds per suite, default 1500),
#        RUST_TEST_THREADS (default 1, so a crash names its test),
#        PYTEST_ARGS and UPSTREAM_SUITE_ARGS (extra arguments, word-split;
#        e.g. UPSTREAM_SUITE_ARGS="-k throw").

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHONS="${PYTHONS:-3.10 3.11 3.12 3.13 debian-3.13 debian-3.14 debian-3.15 debian-3.14d}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
SUITE_TIMEOUT="${SUITE_TIMEOUT:-1500}"
read -r -a PYTEST_EXTRA <<<"${PYTEST_ARGS:-}"
read -r -a UPSTREAM_EXTRA <<<"${UPSTREAM_SUITE_ARGS:-}"
LOG_DIR="$ROOT/target/test-logs"
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-1}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
export PYTHONFAULTHANDLER=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
export GREENLET_RS_CACHE="${GREENLET_RS_CACHE:-$HOME/.cache/greenlet-rs}"

mkdir -p "$LOG_DIR"

# Summary rows: "suite<TAB>status<TAB>counts".
SUMMARY=()
FAILED=0

note() { printf '\n==== %s\n' "$*"; }

# Turn a suite's log into "N passed, N failed[, N skipped]", or "" if the
# log holds no result line (the suite crashed or never ran).
counts_of() { # kind logfile
    local kind="$1" log="$2"
    case "$kind" in
    cargo)
        # One "test result:" line per test binary and doctest run.
        awk '/^test result:/ {
                 for (i = 1; i <= NF; i++) {
                     if ($(i) ~ /^passed;?$/) p += $(i-1);
                     if ($(i) ~ /^failed;?$/) f += $(i-1);
                     if ($(i) ~ /^ignored;?$/) s += $(i-1);
                 }
                 seen = 1
             }
             END { if (seen) printf "%d passed, %d failed, %d skipped", p, f, s }' "$log"
        ;;
    pytest)
        # The last line that looks like "3 failed, 10 passed, 1 skipped in 4.2s".
        grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|error|errors|deselected|xfailed|xpassed)' "$log" \
            | tail -n 1 \
            | awk '{
                   for (i = 2; i <= NF; i++) {
                       w = $(i); gsub(/[,=]/, "", w)
                       if (w == "passed" || w == "xfailed") p += $(i-1)
                       else if (w == "failed" || w == "error" || w == "errors" || w == "xpassed") f += $(i-1)
                       else if (w == "skipped") s += $(i-1)
                   }
                   seen = 1
               }
               END { if (seen) printf "%d passed, %d failed, %d skipped", p, f, s }'
        ;;
    layout)
        sed -n 's/^layout-check: \([0-9]*\) offsets and sizes match.*/\1 passed, 0 failed, 0 skipped/p' "$log" | tail -n 1
        ;;
    client)
        sed -n 's/^[a-z]*: \([0-9]* passed, [0-9]* failed, [0-9]* skipped\)$/\1/p' "$log" | tail -n 1
        ;;
    upstream)
        sed -n 's/^upstream-suite: \([0-9]* passed, [0-9]* failed, [0-9]* skipped\)$/\1/p' "$log" | tail -n 1
        ;;
    esac
}

# run_suite NAME KIND CMD...: run CMD with a timeout, tee its output into a
# log, print "NAME: counts" and record a summary row.
run_suite() {
    local name="$1" kind="$2"
    shift 2
    local log="$LOG_DIR/$name.log"
    note "$name: $*"
    local start=$SECONDS
    timeout --kill-after=30 "$SUITE_TIMEOUT" "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local took=$((SECONDS - start))
    local counts
    counts="$(counts_of "$kind" "$log")"
    local status=ok
    if [ "$rc" -ne 0 ]; then
        status="FAILED (exit $rc)"
        [ "$rc" -eq 124 ] && status="FAILED (timeout ${SUITE_TIMEOUT}s)"
        FAILED=1
    elif [ -z "$counts" ]; then
        status="FAILED (no result line)"
        FAILED=1
    fi
    [ -z "$counts" ] && counts="-"
    echo "$name: $counts  [$status, ${took}s]"
    SUMMARY+=("$name"$'\t'"$status"$'\t'"$counts")
}

record() { # name status [counts]
    SUMMARY+=("$1"$'\t'"$2"$'\t'"${3:--}")
    case "$2" in ok) ;; *) FAILED=1 ;; esac
}

# Resolve one $PYTHONS entry to an interpreter path.
find_python() {
    local want="$1" cand
    # "debian-X.Y": CPython X.Y from Debian's packages, unpacked and cached by
    # ../shared/tools/get-cpython (which prints the interpreter's path last).
    if [[ "$want" == debian-* ]]; then
        local getter="$ROOT/../shared/tools/get-cpython"
        [ -x "$getter" ] || return 1
        cand="$("$getter" "${want#debian-}" | tail -n 1)" || return 1
        [ -x "$cand" ] && { echo "$cand"; return 0; }
        return 1
    fi
    if [[ "$want" == */* ]]; then
        [ -x "$want" ] && { echo "$want"; return 0; }
        return 1
    fi
    for cand in $(ls -d "$PYENV_ROOT"/versions/"$want"* 2>/dev/null | sort -V -r); do
        # Only plain CPython builds such as 3.11.7, not 3.11.7t or envs.
        if [[ "$(basename "$cand")" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] && [ -x "$cand/bin/python" ]; then
            echo "$cand/bin/python"
            return 0
        fi
    done
    command -v "python$want" 2>/dev/null && return 0
    return 1
}

# ---------------------------------------------------------------- set up

declare -A VENV=()    # version -> venv dir, only for successful installs
VERSIONS=()

for want in $PYTHONS; do
    note "interpreter $want"
    if ! py="$(find_python "$want")"; then
        echo "no interpreter found for '$want'"
        record "setup-$want" "FAILED (no interpreter)"
        continue
    fi
    # X.Y.Z, so that two builds of one minor version (pyenv's and Debian's 3.13) get
    # venvs of their own.
    # A debug build (Py_DEBUG: reference and assertion checks) gets a "d" suffix.
    ver="$("$py" -c 'import sys; print("%d.%d.%d%s" % (sys.version_info[:3] + ("d" if hasattr(sys, "gettotalrefcount") else "",)))')"
    venv="$ROOT/.venv-test-$ver"
    VERSIONS+=("$ver")
    echo "$py -> $venv"
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || { record "setup-$ver" "FAILED (venv)"; continue; }
    fi
    if ! "$venv/bin/python" -m pip install -q pytest cython objgraph psutil setuptools; then
        record "setup-$ver" "FAILED (test tools)"
        continue
    fi
    # Build once per CPython: pip fetches maturin (pyproject's build-system)
    # and builds the extension into this venv.
    start=$SECONDS
    if "$venv/bin/python" -m pip install . 2>&1 | tee "$LOG_DIR/install-$ver.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        record "install-$ver" ok "built in $((SECONDS - start))s"
        VENV[$ver]="$venv"
    else
        record "install-$ver" "FAILED (pip install .)"
    fi
done

# ---------------------------------------------------------------- Rust

run_suite "cargo-test-core" cargo cargo test -p greenlet-core
run_suite "cargo-test-core-release" cargo cargo test --release -p greenlet-core

# ---------------------------------------------------------------- Python

PYTEST_DIRS=()
for d in tests/python tests/cython; do
    [ -d "$d" ] && PYTEST_DIRS+=("$d")
done

for ver in "${VERSIONS[@]}"; do
    venv="${VENV[$ver]:-}"
    if [ -z "$venv" ]; then
        record "pytest-$ver" "FAILED (not installed)"
        record "upstream-suite-$ver" "FAILED (not installed)"
        continue
    fi
    # One suite per directory, so a crash in one leaves the other's counts.
    for dir in "${PYTEST_DIRS[@]}"; do
        suite="pytest-$ver-$(basename "$dir")"
        run_suite "$suite" pytest \
            "$venv/bin/python" -m pytest -q -p no:cacheprovider "${PYTEST_EXTRA[@]}" "$dir"
        if [ -z "$(counts_of pytest "$LOG_DIR/$suite.log")" ]; then
            # It crashed: rerun a process per file (per test in a file that
            # crashes), so the crash fails one test and the rest are counted.
            run_suite "$suite-isolated" pytest \
                "$venv/bin/python" tools/pytest_isolated.py -p no:cacheprovider "${PYTEST_EXTRA[@]}" "$dir"
        fi
    done
    # Our struct mirrors against this interpreter's own headers (offsetof vs offset_of!).
    run_suite "layout-check-$ver" layout \
        env LAYOUT_CHECK_TARGET_DIR="$ROOT/target/layout-check" tools/layout-check/run.sh "$venv/bin/python"
    run_suite "upstream-suite-$ver" upstream \
        "$venv/bin/python" tools/upstream_suite.py "${UPSTREAM_EXTRA[@]}"
    if [ -z "$(counts_of upstream "$LOG_DIR/upstream-suite-$ver.log")" ]; then
        # It crashed before its result line: get the counts anyway, one
        # process per module, resuming after each crashing test.
        run_suite "upstream-suite-$ver-isolated" upstream \
            "$venv/bin/python" tools/upstream_suite.py --isolate --no-prepare "${UPSTREAM_EXTRA[@]}"
    fi
done

# ---------------------------------------------------------------- clients

# Real clients, installed from PyPI as published, against our greenlet and (as the
# baseline of environment failures) against upstream greenlet 3.5.6. CLIENTS=none skips.
CLIENTS="${CLIENTS:-gevent eventlet sqlalchemy greenback playwright}"
if [ "$CLIENTS" != none ]; then
    for client in $CLIENTS; do
        run_suite "client-$client-3.11" client \
            python3 tools/clients.py "$client" --python 3.11 --baseline
    done
fi

# ---------------------------------------------------------------- summary

note "summary"
printf '%-34s %-28s %s\n' "suite" "status" "counts"
printf '%-34s %-28s %s\n' "-----" "------" "------"
for row in "${SUMMARY[@]}"; do
    IFS=$'\t' read -r name status counts <<<"$row"
    printf '%-34s %-28s %s\n' "$name" "$status" "$counts"
done
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAILED (logs in $LOG_DIR)"
    exit 1
fi
echo "RESULT: all passed"
