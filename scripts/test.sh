#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite twice: a normal
# Release build, then an AddressSanitizer + UBSan build; then fuzzes the recipe
# parser for a minute (libFuzzer). This is the README's test command and what
# CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh

echo "== Release build"
bash scripts/build.sh > /dev/null
(cd build && ctest --output-on-failure -j2)

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
bash scripts/build.sh --sanitize > /dev/null
# OpenBLAS and libgomp keep their thread pools until exit: not leaks of ours.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest --output-on-failure -j2)

echo "== libFuzzer on the recipe parser (60 s)"
log=$(mktemp)
if ! bash scripts/fuzz.sh 60 > "$log" 2>&1; then
  cat "$log"; rm -f "$log"
  echo "fuzzing found a problem: see the report above and build-fuzz/findings/" >&2
  exit 1
fi
grep -E "^Done|number_of_executed_units|new_units_added|peak_rss" "$log"; rm -f "$log"
