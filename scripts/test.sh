#!/usr/bin/env bash
# Builds and runs every test: the unit and integration suites in a normal
# build with -Werror, the same suites under AddressSanitizer + UBSan, and the
# libFuzzer target over parse+redact for FUZZ_SECONDS (default 60) and the
# file-format targets (config, checkpoint, spool, framing) for
# FUZZ_FORMAT_SECONDS each (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs=$(nproc)

echo "=== build (-Werror) and test"
cmake -S . -B build -DLOGVEIL_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

echo "=== AddressSanitizer + UBSan build and test"
cmake -S . -B build-asan -DLOGVEIL_WERROR=ON -DLOGVEIL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j"$jobs")

echo "=== fuzz parse+redact for ${FUZZ_SECONDS:-60} s"
tests/fuzz/run.sh "${FUZZ_SECONDS:-60}" redact
echo "=== fuzz the file formats for ${FUZZ_FORMAT_SECONDS:-10} s each"
tests/fuzz/run.sh "${FUZZ_FORMAT_SECONDS:-10}" conf checkpoint spool frame
