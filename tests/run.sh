#!/bin/sh
# run.sh - the test runner behind `make test` (tier "quick") and
# `make test-full` (tier "full": also runs tests/full_*).
#
# Every test runs in its own process under `timeout`: the C binaries
# $BUILD/tests/test_*, and the scripts tests/test_*.py and tests/test_*.sh
# (scripts get FLAMINGO_BIN, BUILD and PYTHON in the environment).  A test
# passes when it exits 0.  The output of a failing test is shown; the last
# line is always "N passed, N failed".
set -u
tier=${1:-quick}
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
FLAMINGO_BIN=${FLAMINGO_BIN:-flamingo}
TIMEOUT=${TEST_TIMEOUT:-600}
export BUILD PYTHON FLAMINGO_BIN

list=""
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o | *.d) continue ;; esac
    [ -x "$t" ] && list="$list $t"
done
for t in tests/test_*.py tests/test_*.sh; do [ -f "$t" ] && list="$list $t"; done
if [ "$tier" = full ]; then
    for t in tests/full_*.py tests/full_*.sh; do [ -f "$t" ] && list="$list $t"; done
fi

# ONLY="name ..." runs just those tests (make tsan does)
if [ -n "${ONLY:-}" ]; then
    keep=""
    for t in $list; do
        case " $ONLY " in *" $(basename "$t") "*) keep="$keep $t" ;; esac
    done
    list=$keep
fi

logdir="$BUILD/test-logs"
mkdir -p "$logdir"
passed=0
failed=0
for t in $list; do
    name=$(basename "$t")
    log="$logdir/$name.log"
    start=$(date +%s.%N)
    case "$t" in
    *.py) timeout "$TIMEOUT" "$PYTHON" "$t" >"$log" 2>&1 ;;
    *.sh) timeout "$TIMEOUT" sh "$t" >"$log" 2>&1 ;;
    *) timeout "$TIMEOUT" "$t" >"$log" 2>&1 ;;
    esac
    rc=$?
    secs=$(echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1 - $2}')
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $name (${secs}s)"
    else
        failed=$((failed + 1))
        [ $rc -eq 124 ] && why="timed out after ${TIMEOUT}s" || why="exit $rc"
        echo "FAIL $name ($why, ${secs}s); last lines of $log:"
        tail -n 30 "$log" | sed 's/^/    /'
    fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
