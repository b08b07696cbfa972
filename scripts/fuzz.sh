#!/usr/bin/env bash
# Fuzzes the recipe parser (tests/fuzz_recipe.c) with libFuzzer for a bounded
# time and fails on any finding (crash, leak, undefined behaviour, timeout).
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
# Seeds: tests/fuzz_corpus/ (read only); what the fuzzer learns goes to
# build-fuzz/corpus/, findings to build-fuzz/findings/ (reproduce with
# build-fuzz/fuzz_recipe FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPYNCO_FUZZ=ON > /dev/null
cmake --build build-fuzz -j"$(nproc)" --target fuzz_recipe > /dev/null
mkdir -p build-fuzz/corpus build-fuzz/findings
export ASAN_OPTIONS="detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
build-fuzz/fuzz_recipe -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -dict=tests/fuzz_recipe.dict -artifact_prefix=build-fuzz/findings/ -print_final_stats=1 \
  build-fuzz/corpus tests/fuzz_corpus
