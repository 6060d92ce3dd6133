#!/usr/bin/env bash
# Installs the Debian packages logveil builds and tests with. Idempotent: when
# everything is present it prints nothing and exits 0.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libyajl-dev libpcre2-dev libyaml-dev zlib1g-dev libssl-dev
  libev-dev libcurl4-openssl-dev librdkafka-dev libsnappy-dev
  libmicrohttpd-dev libcmocka-dev
  python3 kcat time openjdk-17-jdk-headless maven openssl
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
