#!/bin/sh
# Runs the C unit tests and the busted specs, prints each suite's result and a last line
# "N passed, N failed" summing them. Exit status 1 when anything failed.
# Env: BUILD (build dir, default build), SPECS (spec files or dirs, default tests/spec).
BUILD=${BUILD:-build}
SPECS=${SPECS:-tests/spec}
export ND_BUILD="$BUILD"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-12}"
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== C unit tests ($BUILD/bin/nd-ctest)"
"$BUILD/bin/nd-ctest" >"$tmp/c.out" 2>&1
rc=$?
cat "$tmp/c.out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/c.out" | tail -n 1)
if [ -n "$line" ]; then
    pass=$((pass + $(echo "$line" | cut -d' ' -f1)))
    fail=$((fail + $(echo "$line" | cut -d' ' -f3)))
fi
if [ $rc -ne 0 ] && [ -z "$line" -o "$(echo "$line" | cut -d' ' -f3)" = 0 ]; then
    echo "nd-ctest exited with status $rc"
    fail=$((fail + 1))
fi

echo "== busted specs ($SPECS)"
PRELOAD=""
if [ "${SAN:-0}" = 1 ]; then
    PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)"
fi
# allocator_may_return_null: specs ask for absurd sizes on purpose; nd turns the failed allocation
# into a Lua error, as it does without ASan (which would abort instead).
# shellcheck disable=SC2086
LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}" lua5.4 /usr/bin/busted -o TAP $SPECS >"$tmp/b.out" 2>&1
rc=$?
grep -vE '^ok ' "$tmp/b.out"
bp=$(grep -cE '^ok ' "$tmp/b.out")
bf=$(grep -cE '^not ok ' "$tmp/b.out")
echo "busted: $bp passed, $bf failed"
if [ $rc -ne 0 ] && [ "$bf" = 0 ]; then
    echo "busted exited with status $rc"
    bf=1
fi
pass=$((pass + bp))
fail=$((fail + bf))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
