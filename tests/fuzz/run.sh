#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each named
# TARGET (default: all) for SECONDS (default 60) on a copy of its seed
# corpus, so no new corpus file is ever written into the repository. Exits
# non-zero when a fuzzer finds a crash, a sanitizer error, a leak or an
# oracle failure; the input that failed is kept in build-fuzz/artifacts/.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Targets and their seeds:
#   redact      parse + redact + enrich (fuzz_redact.c)     seeds/
#   conf        the YAML configuration binder               configs/*.yaml
#   checkpoint  the tail checkpoint reader                  seeds-checkpoint/
#   spool       the spool segment reader                    seeds-spool/
#   frame       CRI/Docker/JSON framing + multiline joining seeds-frame/
#   verify_audit  verify-audit's export reader              seeds-audit/
#   es_bulk     the Elasticsearch _bulk answer reader       seeds-es-bulk/
#
# Environment: FUZZ_ARGS adds libFuzzer options (e.g. "-jobs=4 -workers=4");
# LOGVEIL_FUZZ_SKIP steps past known issues (see fuzz_redact.c); undefined
# behaviour stops the run unless UBSAN_OPTIONS says otherwise.
set -euo pipefail

seconds=${1:-60}
case $seconds in
''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(redact conf checkpoint spool frame verify_audit es_bulk)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build-fuzz

CC=clang cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DLOGVEIL_FUZZ=ON \
    -DLOGVEIL_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
for t in "${targets[@]}"; do
    cmake --build "$build" --target "fuzz_$t" -j "$(nproc)" >/dev/null
done

work=$(mktemp -d "${TMPDIR:-/tmp}/logveil-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/artifacts"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# The targets write their files under TMPDIR, removed with the corpus.
export TMPDIR=$work

for t in "${targets[@]}"; do
    corpus=$work/corpus-$t
    mkdir -p "$corpus"
    opts=()
    case $t in
    redact)
        cp "$here"/seeds/* "$corpus"/
        # -timeout: an input that takes seconds is a finding too (a regex
        # that backtracks is a denial of service on the sidecar).
        opts=(-dict="$here/redact.dict" -max_len=4096 -timeout=25) ;;
    conf)
        cp "$root"/configs/*.yaml "$corpus"/
        opts=(-dict="$here/conf.dict" -max_len=8192 -timeout=10) ;;
    checkpoint) cp "$here"/seeds-checkpoint/* "$corpus"/; opts=(-max_len=8192 -timeout=10) ;;
    spool) cp "$here"/seeds-spool/* "$corpus"/; opts=(-max_len=16384 -timeout=10) ;;
    frame) cp "$here"/seeds-frame/* "$corpus"/; opts=(-max_len=16384 -timeout=10) ;;
    verify_audit) cp "$here"/seeds-audit/* "$corpus"/; opts=(-max_len=8192 -timeout=25) ;;
    es_bulk) cp "$here"/seeds-es-bulk/* "$corpus"/; opts=(-max_len=16384 -timeout=10) ;;
    *) echo "$0: no fuzz target named $t" >&2; exit 2 ;;
    esac
    echo "=== fuzz_$t for $seconds s"
    # shellcheck disable=SC2086
    "$build/tests/fuzz_$t" "$corpus" -max_total_time="$seconds" "${opts[@]}" \
        -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 ${FUZZ_ARGS:-} </dev/null
done
