#!/usr/bin/env bash
# Builds logveil and runs the sidecar pipeline on the bundled demo log:
# a CRI-format container log with passwords, tokens, API keys, a JWT, an AWS
# key and a partial line. The redacted records go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLOGVEIL_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target logveil >/dev/null
echo "--- demo/app.log through: build/logveil run --config demo/logveil.yaml" >&2
build/logveil run --config demo/logveil.yaml < demo/app.log
