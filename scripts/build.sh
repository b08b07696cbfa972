#!/usr/bin/env bash
# Configures and builds Spynco. Usage: scripts/build.sh [--sanitize] [--native]
#   --sanitize  AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
#   --native    -O3 -march=native (not portable) in build-native/
# Otherwise a portable Release build in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
opts=(-DCMAKE_BUILD_TYPE=Release)
for arg in "$@"; do
  case "$arg" in
    --sanitize) dir=build-asan; opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPYNCO_SANITIZE=ON) ;;
    --native) dir=build-native; opts+=(-DSPYNCO_NATIVE=ON) ;;
    *) echo "usage: scripts/build.sh [--sanitize] [--native]" >&2; exit 2 ;;
  esac
done
cmake -S . -B "$dir" "${opts[@]}" > /dev/null
cmake --build "$dir" -j"$(nproc)"
echo "$dir"
