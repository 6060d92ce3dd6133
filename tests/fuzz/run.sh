#!/usr/bin/env bash
# Builds fuzz_redact with clang and libFuzzer in build-fuzz/ and runs it for
# SECONDS (default 60) on a copy of the seed corpus, then fuzz_verify_audit
# for AUDIT_FUZZ_SECONDS (default 15) on a copy of seeds-audit/, so no new corpus file is
# ever written into the repository. Exits non-zero when the fuzzer finds a
# crash, a sanitizer error or an oracle failure; the input that failed is kept
# in build-fuzz/artifacts/.
#
#   tests/fuzz/run.sh [SECONDS]
#
# Environment: FUZZ_ARGS adds libFuzzer options (e.g. "-jobs=4 -workers=4");
# LOGVEIL_FUZZ_SKIP steps past known issues (see fuzz_redact.c); undefined
# behaviour stops the run unless UBSAN_OPTIONS says otherwise.
set -euo pipefail

seconds=${1:-60}
case $seconds in
''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build-fuzz

CC=clang cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DLOGVEIL_FUZZ=ON \
    -DLOGVEIL_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzz_redact fuzz_verify_audit -j "$(nproc)" >/dev/null

corpus=$(mktemp -d "${TMPDIR:-/tmp}/logveil-fuzz.XXXXXX")
trap 'rm -rf "$corpus"' EXIT
cp "$here"/seeds/* "$corpus"/
mkdir -p "$build/artifacts"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# -timeout: an input that takes seconds is a finding too (a regex that
# backtracks is a denial of service on the sidecar).
# shellcheck disable=SC2086
"$build/tests/fuzz_redact" "$corpus" \
    -max_total_time="$seconds" -dict="$here/redact.dict" -max_len=4096 -timeout=25 \
    -artifact_prefix="$build/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-}

# verify-audit's reader on malformed exports (issue 11): a shorter run.
audit_seconds=${AUDIT_FUZZ_SECONDS:-15}
audit_corpus=$(mktemp -d "${TMPDIR:-/tmp}/logveil-fuzz-audit.XXXXXX")
trap 'rm -rf "$corpus" "$audit_corpus"' EXIT
cp "$here"/seeds-audit/* "$audit_corpus"/
# shellcheck disable=SC2086
"$build/tests/fuzz_verify_audit" "$audit_corpus" \
    -max_total_time="$audit_seconds" -max_len=8192 -timeout=25 \
    -artifact_prefix="$build/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-}
