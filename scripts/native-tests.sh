#!/usr/bin/env bash
# `npm run test:native`: builds the native unit tests (test/native) with plain
# cmake under AddressSanitizer and UndefinedBehaviorSanitizer and runs them with ctest.
# ZS_SANITIZE overrides the sanitizer list (empty for an unsanitized build).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize="${ZS_SANITIZE-address,undefined}"
dir="build-native-tests"
cmake -S . -B "$dir" -DZS_NATIVE_TESTS=ON -DZS_SANITIZE="$sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j2
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir "$dir" --output-on-failure
