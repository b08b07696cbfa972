#!/usr/bin/env bash
# The main job on a bundled sample: installs what is needed (apt), builds, and
# colorizes a real 16-bit panchromatic GeoTIFF (SpaceNet Rotterdam, 0.5 m) and a
# NAIP scene (made gray through H_t) with the bundled default model.
# Outputs: sample-out/*.tif (georeferenced RGB GeoTIFFs; open them in QGIS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh > /dev/null
mkdir -p sample-out
for input in tests/data/rotterdam_pan_u16.tif tests/data/naip_rgbn_266x204.tif; do
  out=sample-out/$(basename "${input%.tif}")_color.tif
  build/spynco colorize "$input" "$out"
  echo "wrote $out"
done
gdalinfo sample-out/rotterdam_pan_u16_color.tif | sed -n '1,4p;/Band 1/,$p' | head -20
