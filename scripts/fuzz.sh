#!/usr/bin/env bash
# CI (.ci/run) and by hand: builds the libFuzzer targets of test/fuzz with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer (CMake option ZS_FUZZ) and runs
# each for a bounded time from its seed corpus (test/fuzz/corpus/<target>).
# Any crash, sanitizer report, invariant failure, timeout or memory blow-up of
# any target fails the run; the input that did it is saved under
# build-fuzz/artifacts/ and its path printed (re-run it: build-fuzz/<target>_fuzz <file>).
#
#   scripts/fuzz.sh                  every target, ZS_FUZZ_TIME seconds each (default 30)
#   scripts/fuzz.sh frame aead       only those targets
#   ZS_FUZZ_TIME=600 scripts/fuzz.sh a longer local run
#   ZS_FUZZ_JOBS=2 scripts/fuzz.sh   two targets at once (CI)
#
# New inputs the fuzzer finds go to build-fuzz/corpus/<target> (not the repo);
# copy the interesting ones to test/fuzz/corpus/<target> by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${ZS_FUZZ_TIME:-30}"
dir="${ZS_FUZZ_BUILD:-build-fuzz}"
cxx="${ZS_FUZZ_CXX:-clang++}"

command -v "$cxx" >/dev/null || {
  echo "fuzz: $cxx not found; install clang and libFuzzer (Debian 12: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
}
cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$cxx" -DZS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j2

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in test/fuzz/*_fuzz.cc; do
    name="$(basename "$src" .cc)"
    targets+=("${name%_fuzz}")
  done
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$dir/artifacts"
# ZS_FUZZ_JOBS targets run at once (default 1; a libFuzzer run uses one core, so CI on two cores
# runs two). Each target's lines are printed when it ends, so outputs never interleave.
jobs="${ZS_FUZZ_JOBS:-1}"
fuzz_one() {
  local t="$1" bin="$dir/${1}_fuzz" seeds="test/fuzz/corpus/$1"
  printf '\n== fuzz %s (%ss)\n' "$t" "$seconds"
  [ -x "$bin" ] || { echo "fuzz: no target $t (test/fuzz/${t}_fuzz.cc)" >&2; return 1; }
  mkdir -p "$dir/corpus/$t"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a blow-up is a failure.
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/$t-" "$dir/corpus/$t" "$seeds" >"$dir/$t.log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$dir/$t.log" || true
  else
    tail -n 40 "$dir/$t.log"
    echo "fuzz: $t FAILED; the input is in $dir/artifacts/$t-* (full log: $dir/$t.log)" >&2
    return 1
  fi
}
failed=()
pids=()
names=()
reap_one() {
  # Waits for the oldest running target, prints its report, records a failure.
  local pid="${pids[0]}" name="${names[0]}"
  pids=("${pids[@]:1}")
  names=("${names[@]:1}")
  if wait "$pid"; then :; else failed+=("$name"); fi
  cat "$dir/$name.out"
}
for t in "${targets[@]}"; do
  [ "${#pids[@]}" -ge "$jobs" ] && reap_one
  fuzz_one "$t" >"$dir/$t.out" 2>&1 &
  pids+=("$!")
  names+=("$t")
done
while [ "${#pids[@]}" -gt 0 ]; do reap_one; done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failure"
