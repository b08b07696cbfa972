#!/usr/bin/env bash
# Benchmarks of the network core and of colorize, with the PyTorch reference
# measured in the same run. Medians of repeated runs; ratios from this run only.
#
#   scripts/bench.sh [--quick] [--mosaic N] [--skip-torch] [--skip-colorize]
#     --quick        fewer repeats, a 4000x4000 mosaic
#     --mosaic N     side of the colorize benchmark's VRT mosaic (default 20000)
#
# Run it on an otherwise idle machine: 2 cores are shared by everything.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=5 mosaic=20000 torch=1 colorize=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) repeat=2 mosaic=4000 ;;
    --mosaic) mosaic=$2; shift ;;
    --skip-torch) torch=0 ;;
    --skip-colorize) colorize=0 ;;
    *) sed -n '2,9p' "$0" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/deps.sh
bash scripts/build.sh > /dev/null
bin=build/spynco
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
echo "spynco $($bin --version | cut -d' ' -f2), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# value of the n-th field after "median" in a bench line: s or megapixels/s
rate() { sed -n 's/.*, \([0-9.]*\) megapixels\/s.*/\1/p'; }
secs() { sed -n 's/.*median \([0-9.]*\) s.*/\1/p'; }
has_torch=0
if [ $torch = 1 ] && /usr/bin/python3 -c "import torch" 2> /dev/null; then has_torch=1; fi
[ $torch = 1 ] && [ $has_torch = 0 ] && echo "(PyTorch not installed: apt-get install python3-torch for the reference rows)"

echo
echo "== G inference (eval mode, batch 1, no halo)"
declare -A infer
for size in 256 512; do
  for t in 1 2; do
    line=$($bin bench --infer $size --threads $t --repeat $repeat)
    echo "$line"
    infer[$size,$t]=$(echo "$line" | rate)
    if [ $has_torch = 1 ]; then
      tl=$(/usr/bin/python3 scripts/bench_torch.py --infer $size --threads $t --repeat $repeat)
      tr=$(echo "$tl" | rate)
      echo "$tl  -> spynco/torch = $(awk -v a="${infer[$size,$t]}" -v b="$tr" 'BEGIN{printf "%.2fx", a/b}')"
    fi
  done
  echo "2 threads vs 1 at $size: $(awk -v a="${infer[$size,2]}" -v b="${infer[$size,1]}" 'BEGIN{printf "%.2fx", a/b}')"
done

echo
echo "== training step (G and D, both pseudo-cycles, 3 scales, 256x256)"
for batch in 1 4; do
  for t in 1 2; do
    line=$($bin bench --train 256 --batch $batch --threads $t --repeat $repeat)
    echo "$line"
    if [ $has_torch = 1 ]; then
      tl=$(/usr/bin/python3 scripts/bench_torch.py --train 256 --batch $batch --threads $t --repeat $repeat)
      echo "$tl  -> spynco/torch time = $(awk -v a="$(echo "$line" | secs)" -v b="$(echo "$tl" | secs)" 'BEGIN{printf "%.2fx", a/b}')"
    fi
  done
done

if [ $colorize = 1 ]; then
  echo
  echo "== colorize end to end: ${mosaic}x${mosaic} VRT mosaic of real NAIP scenes, 2 threads"
  model=${SPYNCO_MODEL:-}
  if [ -z "$model" ]; then
    [ -f models/spynco-default.h5 ] && model=models/spynco-default.h5
  fi
  if [ -z "$model" ]; then echo "(no model: set SPYNCO_MODEL)"; exit 0; fi
  bash scripts/make_mosaic_vrt.sh "$out/mosaic.vrt" "$mosaic" "$mosaic"
  /usr/bin/time -v $bin colorize -q --threads 2 --model "$model" "$out/mosaic.vrt" "$out/color.tif" \
    2> "$out/time.txt"
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$out/time.txt" |
    awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/time.txt")
  mp=$(awk -v n="$mosaic" -v s="$wall" 'BEGIN{printf "%.3f", n*n/s/1e6}')
  echo "colorize: ${wall} s, ${mp} megapixels/s, peak RSS $((rss / 1024)) MB"
  echo "network-only at 512, 2 threads: ${infer[512,2]} megapixels/s -> colorize/network = $(awk -v a="$mp" -v b="${infer[512,2]}" 'BEGIN{printf "%.2fx", a/b}')"
  # the same network on colorize's own tile size, without the halo
  tile=$($bin colorize --help 2>&1 | sed -n 's/.*--tile N.*(default \([0-9]*\)).*/\1/p')
  line=$($bin bench --infer "$tile" --threads 2 --repeat $repeat)
  echo "$line"
  net=$(echo "$line" | rate)
  echo "network-only at colorize's tile $tile: $net megapixels/s -> colorize/network = $(awk -v a="$mp" -v b="$net" 'BEGIN{printf "%.2fx", a/b}')"
  # where the rest goes: the halo (the network on each tile's window), then I/O and stitching
  line=$($bin bench --infer "$tile" --halo --threads 2 --repeat $repeat)
  echo "$line"
  halo=$(echo "$line" | rate)
  echo "split: the halo costs $(awk -v a="$halo" -v b="$net" 'BEGIN{printf "%.1f%%", 100 * (1 - a/b)}') of network-only; I/O and stitching cost $(awk -v a="$mp" -v b="$halo" 'BEGIN{printf "%.1f%%", 100 * (1 - a/b)}') of the network with its halo"
fi
