#!/bin/sh
# Run the test suite on both ends of the supported transformers range, side by side (`make test` calls this).
#
#   .ci/test_both_ends.sh PYTHON OVERLAY TEST_FILE...
#
# The whole suite runs with PYTHON's own transformers (the newest release of the range) in the foreground; the given
# test files run at the same time with OVERLAY (a --no-deps install of the oldest release) first on PYTHONPATH, their
# output kept in a log printed at the end. Both are single-threaded (tests/conftest.py), one per core. pytest's exit
# code 5 (no test collected) counts as a failure: a run that tests nothing is no pass.
set -u
python=$1
overlay=$(cd "$2" && pwd)  # absolute: tests that start subprocesses in other directories inherit PYTHONPATH
shift 2

log="$overlay/pytest.log"
(PYTHONPATH="$overlay${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest -q -p no:cacheprovider "$@" >"$log" 2>&1
 echo $? >"$log.status") &

"$python" -m pytest -q tests
newest=$?
wait
oldest=$(cat "$log.status")

echo
echo "== $* on the oldest supported $(PYTHONPATH="$overlay" "$python" -c 'import transformers; print("transformers", transformers.__version__)')"
cat "$log"

failed=0
for run in "newest:$newest" "oldest:$oldest"; do
    name=${run%%:*}
    status=${run#*:}
    if [ "$status" -eq 5 ]; then
        echo "FAILED: pytest collected no tests on the $name transformers" >&2
        failed=1
    elif [ "$status" -ne 0 ]; then
        echo "FAILED: tests on the $name transformers (pytest exit code $status)" >&2
        failed=1
    fi
done
exit $failed
