#!/usr/bin/env bash
# The fixed train/test split of ../shared/data (docs/data.md), written as list
# files in recipes/splits/ (paths relative to that folder, as spynco reads lists).
#   - per scene class, files in natural name order: every 5th (the 5th, 10th, ...)
#     is held out for testing, the other 4/5 train;
#   - the training files alternate between the gray domain (1st, 3rd, ...: made gray
#     through H_t) and the color domain (2nd, 4th, ...), so the two training sets
#     never share an image: strictly unpaired.
# Deterministic; rerunning gives the same lists.
set -euo pipefail
cd "$(dirname "$0")/.."
data_rel=../../../shared/data          # from recipes/splits/
out=recipes/splits
[ -d "$out/$data_rel" ] || { echo "no shared data at $out/$data_rel" >&2; exit 1; }
split_set() { # NAME SUBDIR PATTERN
  local name=$1 sub=$2 pattern=$3
  : > "$out/${name}_test.txt"; : > "$out/${name}_train_gray.txt"; : > "$out/${name}_train_color.txt"
  for cls in $(cd "$out/$data_rel/$sub" && find . -mindepth 0 -type d | sort); do
    local i=0 t=0
    while IFS= read -r f; do
      [ -n "$f" ] || continue
      i=$((i + 1))
      local path="$data_rel/$sub/${cls#./}/$f"
      path=${path//\/.\//\/}; path=${path//\/\//\/}
      if [ $((i % 5)) -eq 0 ]; then echo "$path" >> "$out/${name}_test.txt"
      else
        t=$((t + 1))
        if [ $((t % 2)) -eq 1 ]; then echo "$path" >> "$out/${name}_train_gray.txt"
        else echo "$path" >> "$out/${name}_train_color.txt"; fi
      fi
    done < <(cd "$out/$data_rel/$sub/$cls" && find . -maxdepth 1 -type f -name "$pattern" -printf '%f\n' | sort -V)
  done
}
split_set rsscn7 rsscn7 '*.jpg'
split_set aid150 aid150 '*.jpg'
split_set cil_roads cil_roads/training '*.png'
wc -l "$out"/*.txt
