#!/usr/bin/env bash
# Reproduces docs/results.md: the seed's ablation tables on our test split.
#
# Every variant is trained from scratch on the same training split (docs/data.md)
# with the same budget, exported, and evaluated with `spynco eval` on the held-out
# test lists; the gray-copy row comes from the same eval runs; the default model
# row evaluates models/spynco-default.h5 as shipped, with the default
# --keep-luminance and without it. Every variant is evaluated as `colorize` runs
# by default (--keep-luminance). Resumable: a finished
# variant (its model.h5 exists) is not retrained, a stopped one resumes.
#
#   bash scripts/results.sh                 # all variants, then docs/results.md
#   STEPS=400 CROP=96 BATCH=4 bash scripts/results.sh
#   VARIANTS="l1 l123" SKIP_DEFAULT=1 bash scripts/results.sh   # some rows only
#
# Needs ../shared/data (the splits' paths point there). Takes a while on 2 cores:
# about STEPS x 1-2 s per variant, twice that for the learned-F variant.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-400}
CROP=${CROP:-96}
BATCH=${BATCH:-4}
SEED=${SEED:-1}
THREADS=${THREADS:-2}
OUT=${OUT:-runs/results}
VARIANTS=${VARIANTS:-"l1 l123 l123c learnedf"}
SETS=${SETS:-"rsscn7 aid150 cil_roads"}
S=recipes/splits
BIN=build/spynco
[ -x "$BIN" ] || bash scripts/build.sh > /dev/null
[ -f "$S/rsscn7_test.txt" ] && [ -e "$(dirname "$S/x")/$(head -1 "$S/rsscn7_test.txt")" ] ||
  { echo "results.sh: the split's images are missing (../shared/data); see docs/data.md" >&2; exit 1; }

variant_args() {
  case $1 in
    l1) echo "--scales 1" ;;
    l123) echo "--scales 1,2,3" ;;
    l123c) echo "--scales 1,2,3 --contours" ;;
    learnedf) echo "--scales 1,2,3 --learned-f" ;;
    *) echo "results.sh: unknown variant $1" >&2; exit 2 ;;
  esac
}

train_variant() { # NAME
  local v=$1 dir=$OUT/$1
  [ -f "$dir/model.h5" ] && return 0
  mkdir -p "$dir"
  local t0; t0=$(date +%s)
  if [ -f "$dir/last.h5" ]; then
    "$BIN" train -q --out "$dir" --resume --threads "$THREADS"
  else
    # shellcheck disable=SC2046
    "$BIN" train -q $(variant_args "$v") \
      --gray $S/rsscn7_train_gray.txt $S/aid150_train_gray.txt $S/cil_roads_train_gray.txt \
      --gray-from-color \
      --color $S/rsscn7_train_color.txt $S/aid150_train_color.txt $S/cil_roads_train_color.txt \
      --crop "$CROP" --batch "$BATCH" --steps "$STEPS" --seed "$SEED" --threads "$THREADS" \
      --checkpoint-every 100 --out "$dir"
  fi
  echo $(( $(date +%s) - t0 + $(cat "$dir/train_seconds" 2>/dev/null || echo 0) )) > "$dir/train_seconds.tmp"
  mv "$dir/train_seconds.tmp" "$dir/train_seconds"
  "$BIN" info "$dir/last.h5" > "$dir/info.txt"
  "$BIN" export "$dir/last.h5" "$dir/model.h5"
}

eval_model() { # MODEL DIR [extra eval options]
  local model=$1 dir=$2; shift 2
  for set in $SETS; do
    [ -f "$dir/$set.json" ] && continue
    "$BIN" eval -q --threads "$THREADS" --model "$model" "$@" --json "$dir/$set.json" \
      --csv "$dir/$set.csv" "$S/${set}_test.txt"
  done
}

for v in $VARIANTS; do
  echo "== $v: training ($STEPS steps, crop $CROP, batch $BATCH)" >&2
  train_variant "$v"
  eval_model "$OUT/$v/model.h5" "$OUT/$v"
done
if [ "${SKIP_DEFAULT:-0}" != 1 ]; then
  echo "== default model" >&2
  mkdir -p "$OUT/default" "$OUT/default-raw"
  eval_model models/spynco-default.h5 "$OUT/default"
  eval_model models/spynco-default.h5 "$OUT/default-raw" --no-keep-luminance
  "$BIN" info models/spynco-default.h5 > "$OUT/default/info.txt"
fi

/usr/bin/env python3 scripts/results_tables.py "$OUT" $SETS > docs/results.md.tmp
mv docs/results.md.tmp docs/results.md
echo "wrote docs/results.md" >&2
