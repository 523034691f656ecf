#!/usr/bin/env bash
# Every test of greenlet-rs, for each CPython it can find.
#
#   tools/test.sh                      # every interpreter of the matrix that is here
#   PYTHONS="3.11 debian-3.14" tools/test.sh     # just these (all of them required)
#   PYTHONS=/usr/bin/python3.12 tools/test.sh
#   REQUIRE_ALL_PYTHONS=1 tools/test.sh          # the whole matrix or fail (.ci/run)
#
# The matrix: 3.10 3.11 3.12 3.13 (pyenv's builds, else pythonX.Y on PATH),
# debian-3.13 debian-3.14 debian-3.15 (Debian's builds), debian-3.14d (its
# Py_DEBUG build) and aarch64-3.11 aarch64-3.14 (Debian's arm64 builds, run
# under qemu-user by tools/aarch64.sh; an aarch64-X.Y leg is skipped loudly
# where qemu or the cross tools are missing and cannot be installed, i.e. not
# root). A debian-X.Y comes from ../shared/tools/get-cpython when
# that exists (it downloads and caches it), else from what it already put in
# ~/.cache/greenlet-pythons/X.Y. With $PYTHONS unset, an interpreter of the
# matrix that is not here is SKIPPED (named, with the reason, at the start
# and again at the end), and any other pythonX.Y (X.Y >= 3.10) or python3 on
# PATH whose minor version the matrix did not cover is tested too; the run
# fails only on a failing suite or when no interpreter was found at all.
# With $PYTHONS given, or REQUIRE_ALL_PYTHONS=1, a missing one is a failure.
#
# For each interpreter this makes (or reuses) the venv .venv-test-X.Y.Z in
# the repo root, installs the test tools and builds and installs greenlet-rs
# into it once. Then it runs the Rust tests of greenlet-core once (debug and
# release), and per interpreter pytest on tests/python and on tests/cython,
# the layout check, upstream greenlet's suite (tools/upstream_suite.py) and,
# when tools/stubtest.sh exists, the stub check. Last, the client suites
# (tools/clients.py: gevent, eventlet, ... on CPython 3.11, with packages from
# PyPI), skipped loudly when there is no 3.11 or PyPI cannot be reached, and
# Playwright's when there is no chromium (unless required).
#
# It keeps going after a failure, prints a summary table, and exits non-zero
# if anything failed. Each suite's full output is also kept in
# target/test-logs/. A suite that crashes (no result line) is run a second
# time in crash-proof form (tools/pytest_isolated.py, upstream_suite.py --isolate) so
# the table still has counts; the crash itself stays a failure.
#
# Knobs: PYTHONS, REQUIRE_ALL_PYTHONS (above),
#        STACK_MODES (default "dedicated auto": the GREENLET_STACKS values our tests,
#        upstream's suite and the clients run with again, after the default
#        sliced run; "" for none). To keep CI within its time, auto runs
#        upstream's suite only on the interpreters of AUTO_UPSTREAM (default
#        "3.11 3.13 debian-3.14d": one per way CPython bounds the C stack),
#        the clients of AUTO_CLIENTS (default "gevent": what auto is for) and,
#        on aarch64, nothing beyond the default and dedicated legs,
#        CLIENTS (default "gevent eventlet sqlalchemy greenback playwright"; none skips),
#        RUST_TESTS=0 (skip the greenlet-core tests; `make test-py`),
#        SUITE_TIMEOUT (seconds per suite, default 1500),
#        RUST_TEST_THREADS (default 1, so a crash names its test),
#        PYTEST_ARGS and UPSTREAM_SUITE_ARGS (extra arguments, word-split;
#        e.g. UPSTREAM_SUITE_ARGS="-k throw").

set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MATRIX="3.10 3.11 3.12 3.13 debian-3.13 debian-3.14 debian-3.15 debian-3.14d aarch64-3.11 aarch64-3.14"
if [ -n "${PYTHONS:-}" ]; then
    EXPLICIT=1
else
    EXPLICIT=0
    PYTHONS="$MATRIX"
fi
# A missing interpreter fails the run when it was asked for by name, or always
# with REQUIRE_ALL_PYTHONS=1; otherwise it is skipped, loudly.
REQUIRE_ALL_PYTHONS="${REQUIRE_ALL_PYTHONS:-$EXPLICIT}"
RUST_TESTS="${RUST_TESTS:-1}"
STACK_MODES="${STACK_MODES-dedicated auto}"
AUTO_UPSTREAM="${AUTO_UPSTREAM-3.11 3.13 debian-3.14d}"
AUTO_CLIENTS="${AUTO_CLIENTS-gevent}"
# The default legs run in the default (sliced) mode, whatever the caller's environment says.
unset GREENLET_STACKS
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
# in_list WORD LIST...: whether WORD is one of LIST's words.
in_list() {
    local word="$1" w
    shift
    for w in "$@"; do [ "$w" = "$word" ] && return 0; done
    return 1
}
# mode_is_auto MODE: whether a STACK_MODES entry is auto (auto or auto:SIZE).
mode_is_auto() { [ "${1%%:*}" = auto ]; }

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
    stubtest)
        sed -n 's/^stubtest: \([0-9]* passed, [0-9]* failed, [0-9]* skipped\)$/\1/p' "$log" | tail -n 1
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
    case "$2" in ok | SKIPPED*) ;; *) FAILED=1 ;; esac
}

# Something of the matrix that is not here: skipped, or a failure when required.
SKIPPED=()
missing() { # name reason
    if [ "$REQUIRE_ALL_PYTHONS" = 1 ]; then
        echo "!!!! MISSING $1: $2 (required: REQUIRE_ALL_PYTHONS=1 or named in PYTHONS)"
        record "$1" "FAILED (missing)" "$2"
    else
        echo "!!!! SKIPPING $1: $2"
        record "$1" "SKIPPED" "$2"
        SKIPPED+=("$1: $2")
    fi
}

# Resolve one $PYTHONS entry to an interpreter path. Prints the path, or
# (exit status 1) why there is none.
find_python() {
    local want="$1" cand
    case "$want" in
    debian-*)
        # CPython X.Y from Debian's packages, unpacked and cached by
        # ../shared/tools/get-cpython (which prints the interpreter's path
        # last), or a copy it made earlier.
        local spec="${want#debian-}"
        local getter="$ROOT/../shared/tools/get-cpython"
        local cached="${XDG_CACHE_HOME:-$HOME/.cache}/greenlet-pythons/$spec"
        if [ -x "$getter" ]; then
            cand="$("$getter" "$spec" | tail -n 1)"
            if [ -n "$cand" ] && [ -x "$cand" ]; then
                echo "$cand"
                return 0
            fi
            echo "../shared/tools/get-cpython $spec failed (output above)"
            return 1
        fi
        cand="$cached/usr/bin/python$spec"
        if [ -f "$cached/.get-cpython-complete" ] && [ -x "$cand" ] && "$cand" -I -S -c '' 2>/dev/null; then
            echo "$cand"
            return 0
        fi
        echo "Debian's build comes from ../shared/tools/get-cpython, which is not here, and none is cached in $cached"
        return 1
        ;;
    */*)
        [ -x "$want" ] && { echo "$want"; return 0; }
        echo "$want is not an executable"
        return 1
        ;;
    [0-9]*)
        for cand in $(ls -d "$PYENV_ROOT"/versions/"$want".* 2>/dev/null | sort -V -r); do
            # Only plain CPython builds such as 3.11.7, not 3.11.7t or envs.
            if [[ "$(basename "$cand")" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] && [ -x "$cand/bin/python" ]; then
                echo "$cand/bin/python"
                return 0
            fi
        done
        # (A pyenv shim on PATH may exist and still not run.)
        if cand="$(command -v "python$want")" && "$cand" -c '' 2>/dev/null; then
            echo "$cand"
            return 0
        fi
        echo "no CPython $want in $PYENV_ROOT/versions and no python$want on PATH"
        return 1
        ;;
    *)
        if cand="$(command -v "$want")" && "$cand" -c '' 2>/dev/null; then
            echo "$cand"
            return 0
        fi
        echo "no $want on PATH"
        return 1
        ;;
    esac
}

# Interpreters on PATH that the matrix does not cover (only with $PYTHONS unset):
# pythonX.Y for X.Y >= 3.10, and python3.
extra_pythons() {
    local dir name
    local IFS=:
    for dir in $PATH; do
        [ -d "$dir" ] || continue
        for name in "$dir"/python3.[0-9]* "$dir"/python3; do
            [[ "$(basename "$name")" =~ ^python3(\.[0-9]+)?$ ]] && [ -x "$name" ] && echo "$name"
        done
    done
}

# ---------------------------------------------------------------- set up

declare -A VENV=()    # version -> venv dir, only for successful installs
declare -A SEEN=()    # version or X.Y -> the entry that found it
VERSIONS=()

# setup_python ENTRY PATH: venv, test tools, build and install greenlet-rs.
# Returns 1 when the interpreter is not one we test (another one of the same
# version, too old, free-threaded); the caller decides how loud that is.
setup_python() {
    local want="$1" py="$2" info ver minor ft
    # X.Y.Z, so that two builds of one minor version (pyenv's and Debian's 3.13) get
    # venvs of their own.
    # A debug build (Py_DEBUG: reference and assertion checks) gets a "d" suffix.
    if ! info="$("$py" -c 'import sys, sysconfig; print("%d.%d.%d%s %d.%d %d" % (sys.version_info[:3] + ("d" if hasattr(sys, "gettotalrefcount") else "",) + sys.version_info[:2] + (bool(sysconfig.get_config_var("Py_GIL_DISABLED")),)))')"; then
        WHY="$py does not run"
        return 1
    fi
    read -r ver minor ft <<<"$info"
    if [ -n "${SEEN[$ver]:-}" ]; then
        WHY="$py is CPython $ver, already tested as ${SEEN[$ver]}"
        return 2
    fi
    if [ "$ft" = 1 ]; then
        WHY="$py is a free-threaded build, which greenlet-rs refuses at compile time"
        return 1
    fi
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        WHY="$py is CPython $ver; greenlet-rs needs 3.10 or newer"
        return 1
    fi
    SEEN[$ver]="$want"
    SEEN[$minor]="$want"
    local venv="$ROOT/.venv-test-$ver"
    VERSIONS+=("$ver")
    echo "$py -> $venv"
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || { record "setup-$ver" "FAILED (venv)"; return 0; }
    fi
    if ! "$venv/bin/python" -m pip install -q pytest cython objgraph psutil setuptools; then
        record "setup-$ver" "FAILED (test tools)"
        return 0
    fi
    # Build once per CPython: pip fetches maturin (pyproject's build-system)
    # and builds the extension into this venv.
    local start=$SECONDS
    if "$venv/bin/python" -m pip install . 2>&1 | tee "$LOG_DIR/install-$ver.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        record "install-$ver" ok "built in $((SECONDS - start))s"
        VENV[$ver]="$venv"
    else
        record "install-$ver" "FAILED (pip install .)"
    fi
    return 0
}

# aarch64-X.Y: tools/aarch64.sh installs what it needs (as root), fetches the
# arm64 CPython, builds the manylinux aarch64 wheel and makes the venv. Whether
# it can run at all is checked here; the legs themselves run in the background
# beside the x86_64 suites (below).
AARCH64=()
AARCH64_WANTED=()
check_aarch64() {
    local why
    if ! why="$(bash tools/aarch64.sh check)"; then
        missing "$1" "$why"
        return
    fi
    AARCH64_WANTED+=("${1#aarch64-}")
}
setup_aarch64() {
    local v="$1" start=$SECONDS
    if bash tools/aarch64.sh venv "$v" 2>&1 | tee "$LOG_DIR/install-$1.log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        record "install-$1" ok "built and installed in $((SECONDS - start))s"
        AARCH64+=("$v")
    else
        record "install-$1" "FAILED (tools/aarch64.sh venv $v)"
    fi
}

for want in $PYTHONS; do
    note "interpreter $want"
    if [[ "$want" == aarch64-* ]]; then
        check_aarch64 "$want"
        continue
    fi
    if ! py="$(find_python "$want")"; then
        missing "python-$want" "$py"
        continue
    fi
    WHY=
    setup_python "$want" "$py"
    case $? in
    1) missing "python-$want" "$WHY" ;;
    2) echo "$WHY" ;;
    esac
done

if [ "$EXPLICIT" = 0 ]; then
    # What else is on PATH, for minor versions the matrix did not cover.
    while read -r py; do
        minor="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || continue
        [ -n "${SEEN[$minor]:-}" ] && continue
        note "interpreter $py (on PATH, not in the matrix)"
        WHY=
        setup_python "$py" "$py" || echo "not tested: $WHY"
    done < <(extra_pythons)
fi

if [ "${#SKIPPED[@]}" -gt 0 ]; then
    note "SKIPPING ${#SKIPPED[@]} interpreter(s) of the matrix ($MATRIX):"
    printf '!!!!   %s\n' "${SKIPPED[@]}"
    echo "!!!! (CI tests all of them: .ci/run sets REQUIRE_ALL_PYTHONS=1)"
fi
if [ "${#VERSIONS[@]}" -eq 0 ] && [ "${#AARCH64_WANTED[@]}" -eq 0 ]; then
    note "no interpreter found"
    record "interpreters" "FAILED (none found)" "need CPython >= 3.10: pyenv, pythonX.Y on PATH or PYTHONS=/path/to/python"
fi

# ---------------------------------------------------------------- Rust

if [ "$RUST_TESTS" != 0 ]; then
    run_suite "cargo-test-core" cargo cargo test -p greenlet-core
    run_suite "cargo-test-core-release" cargo cargo test --release -p greenlet-core
fi

# ---------------------------------------------------------------- Python

# The arm64 CPythons under qemu: the pytest suites, the layout check against
# the arm64 headers and upstream's suite (no stubtest: it is the same Python
# code as on x86_64). They run in the background, beside the x86_64 suites:
# both are single-threaded, and the machine has two cores. Their results
# join the table (and their output the log) before the clients, which run alone.
AARCH64_PID=
if [ "${#AARCH64_WANTED[@]}" -gt 0 ]; then
    note "aarch64 legs (${AARCH64_WANTED[*]}): in the background; their output follows the x86_64 suites"
    rm -f "$LOG_DIR"/aarch64.{summary,tested,failed}
    (
        SUMMARY=()
        FAILED=0
        for v in "${AARCH64_WANTED[@]}"; do
            note "interpreter aarch64-$v"
            setup_aarch64 "$v"
        done
        for v in "${AARCH64[@]}"; do
            for suite in python cython; do
                run_suite "pytest-aarch64-$v-$suite" pytest bash tools/aarch64.sh suite "$v" "$suite"
            done
            for mode in $STACK_MODES; do
                mode_is_auto "$mode" && continue
                run_suite "pytest-aarch64-$v-python-$mode" pytest \
                    env GREENLET_STACKS="$mode" bash tools/aarch64.sh suite "$v" python
            done
            run_suite "layout-check-aarch64-$v" layout bash tools/aarch64.sh suite "$v" layout
            run_suite "upstream-suite-aarch64-$v" upstream bash tools/aarch64.sh suite "$v" upstream
            if [ -z "$(counts_of upstream "$LOG_DIR/upstream-suite-aarch64-$v.log")" ]; then
                run_suite "upstream-suite-aarch64-$v-isolated" upstream bash tools/aarch64.sh suite "$v" upstream-isolated
            fi
        done
        printf '%s\n' "${SUMMARY[@]}" >"$LOG_DIR/aarch64.summary"
        printf '%s\n' "${AARCH64[@]}" >"$LOG_DIR/aarch64.tested"
        echo "$FAILED" >"$LOG_DIR/aarch64.failed"
    ) >"$LOG_DIR/aarch64-legs.log" 2>&1 &
    AARCH64_PID=$!
fi

PYTEST_DIRS=()
for d in tests/python tests/cython tests/stress; do
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
    # The type stubs against the installed module (tools/stubtest.sh, when it exists).
    if [ -f tools/stubtest.sh ]; then
        run_suite "stubtest-$ver" stubtest bash tools/stubtest.sh "$venv/bin/python"
    fi
    # Our tests, the stress harness's short run and upstream's suite again in each
    # of STACK_MODES: every greenlet on a stack of its own (dedicated), and the
    # learning policy (auto); GREENLET_STACKS is read at import, the same build.
    for mode in $STACK_MODES; do
        for dir in tests/python tests/stress; do
            [ -d "$dir" ] || continue
            run_suite "pytest-$ver-$(basename "$dir")-$mode" pytest env GREENLET_STACKS="$mode" \
                "$venv/bin/python" -m pytest -q -p no:cacheprovider "${PYTEST_EXTRA[@]}" "$dir"
        done
        if ! mode_is_auto "$mode" || in_list "${SEEN[$ver]}" $AUTO_UPSTREAM; then
            run_suite "upstream-suite-$ver-$mode" upstream env GREENLET_STACKS="$mode" \
                "$venv/bin/python" tools/upstream_suite.py --no-prepare "${UPSTREAM_EXTRA[@]}"
        fi
    done
done

if [ -n "$AARCH64_PID" ]; then
    note "waiting for the aarch64 legs"
    wait "$AARCH64_PID"
    cat "$LOG_DIR/aarch64-legs.log"
    if [ -s "$LOG_DIR/aarch64.summary" ] && [ -f "$LOG_DIR/aarch64.failed" ]; then
        while IFS= read -r line; do
            [ -n "$line" ] && SUMMARY+=("$line")
        done <"$LOG_DIR/aarch64.summary"
        while IFS= read -r v; do
            [ -n "$v" ] && AARCH64+=("$v")
        done <"$LOG_DIR/aarch64.tested"
        [ "$(cat "$LOG_DIR/aarch64.failed")" = 0 ] || FAILED=1
    else
        record "aarch64" "FAILED (the background legs left no results)"
    fi
fi

# ---------------------------------------------------------------- clients

# Real clients, installed from PyPI as published, against our greenlet and (as the
# baseline of environment failures) against upstream greenlet 3.5.6. CLIENTS=none skips.
CLIENTS="${CLIENTS:-gevent eventlet sqlalchemy greenback playwright}"
if [ "$CLIENTS" != none ]; then
    # tools/clients.py finds 3.11 the same way (pyenv's, then python3.11 on PATH)
    # and runs with any Python 3.
    client_why=
    if ! py311="$(find_python 3.11)"; then
        client_why="$py311"
    elif ! timeout 120 "$py311" -m pip --disable-pip-version-check index versions pip \
        >"$LOG_DIR/clients-index-check.log" 2>&1; then
        client_why="$(tail -n 1 "$LOG_DIR/clients-index-check.log")"
    fi
    for client in $CLIENTS; do
        if [ -n "$client_why" ]; then
            missing "client-$client-3.11" "$client_why"
            continue
        fi
        # Playwright drives Debian's chromium, which clients.py installs with
        # apt-get when it is missing: only when required (CI), not on your machine.
        if [ "$client" = playwright ] && [ "$REQUIRE_ALL_PYTHONS" != 1 ] &&
            ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
            missing "client-$client-3.11" "no chromium on PATH (apt-get install chromium; CI installs it)"
            continue
        fi
        run_suite "client-$client-3.11" client \
            "$py311" tools/clients.py "$client" --python 3.11 --baseline
        # Again in each of STACK_MODES (auto only for AUTO_CLIENTS), compared
        # with the upstream results just saved.
        for mode in $STACK_MODES; do
            mode_is_auto "$mode" && ! in_list "$client" $AUTO_CLIENTS && continue
            run_suite "client-$client-3.11-$mode" client env GREENLET_STACKS="$mode" \
                "$py311" tools/clients.py "$client" --python 3.11
        done
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
if [ "${#SKIPPED[@]}" -gt 0 ]; then
    echo
    echo "!!!! SKIPPED ${#SKIPPED[@]} interpreter(s) or client suite(s) that cannot run here (CI runs them all):"
    printf '!!!!   %s\n' "${SKIPPED[@]}"
fi
echo "tested on: ${VERSIONS[*]:-nothing}${AARCH64[*]:+ (aarch64, under qemu: ${AARCH64[*]})}"
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAILED (logs in $LOG_DIR)"
    exit 1
fi
if [ "${#SKIPPED[@]}" -gt 0 ]; then
    echo "RESULT: all passed, ${#SKIPPED[@]} skipped (listed above)"
else
    echo "RESULT: all passed"
fi
