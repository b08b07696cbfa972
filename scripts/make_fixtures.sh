#!/usr/bin/env bash
# Cuts the small raster fixtures in tests/data from the real imagery in
# ../shared/data (see tests/data/README.md for sources and licences).
# Offline; needs gdal-bin. The outputs are committed: tests never need ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
src=${SPYNCO_SHARED_DATA:-../shared/data}/geotiff
out=tests/data
q=(-q -co COMPRESS=DEFLATE)

# NAIP (USDA, public domain): 4 bands R,G,B + a 4th band labelled alpha that holds NIR.
# 266x204: sides not multiples of 4 nor of any tile size. EPSG:26911.
gdal_translate "${q[@]}" "$src/naip_m_3211605_ne_11_060_20200415.tif" "$out/naip_rgbn_266x204.tif"
# The same scene as a plain JPEG without georeferencing.
gdal_translate -q -of JPEG -b 1 -b 2 -b 3 -co QUALITY=90 \
  "$src/naip_m_3211605_ne_11_060_20200415.tif" "$out/naip_plain.jpg"
rm -f "$out/naip_plain.jpg.aux.xml"
# rasterio test data (CC0): a 20x20 one-band Byte image, EPSG:26711 (NAD27).
cp "$src/rasterio_byte.tif" "$out/rasterio_byte_20x20.tif"
# Landsat RGB (rasterio, CC0) corner with its nodata collar turned into a real
# alpha band (RGBA): alpha 0 where the scene has no data. EPSG:32618.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gdal_translate -q -srcwin 0 0 240 200 "$src/rasterio_RGB.byte.tif" "$tmp/rgb.tif"
gdalwarp -q -overwrite -dstalpha -srcnodata 0 -co COMPRESS=DEFLATE -co PHOTOMETRIC=RGB \
  "$tmp/rgb.tif" "$out/landsat_rgba_240x200.tif"
# A real aerial tile (rasterio cogeo, CC0), 0.6 m, EPSG:3857: 384x320 crop for tiling tests.
gdal_translate "${q[@]}" -mask none -srcwin 320 352 384 320 "$src/rasterio_cogeo.tif" "$out/cogeo_rgb_384x320.tif"
# SpaceNet Rotterdam (solaris; CC BY-SA 4.0): a 1-band UInt16 panchromatic crop
# and the co-registered 4-band Float64 multispectral crop. EPSG:32631.
gdal_translate "${q[@]}" -srcwin 200 200 160 160 "$src/solaris_rotterdam_pan1.tif" "$out/rotterdam_pan_u16.tif"
gdal_translate "${q[@]}" -srcwin 100 100 80 80 "$src/solaris_rotterdam_ms1.tif" "$out/rotterdam_ms_f64.tif"
ls -la "$out"/*.tif "$out"/*.jpg

# A tiny evaluation set for `spynco eval` (tests, README): real colour crops of
# the fixtures above in three formats, one with a no-data collar (alpha), and
# list.txt naming them relative to its folder (as recipes/splits/*.txt do).
mkdir -p "$out/eval_set"
gdal_translate -q -of PNG -b 1 -b 2 -b 3 -srcwin 60 40 96 72 "$out/naip_rgbn_266x204.tif" \
  "$out/eval_set/naip_96x72.png"
gdal_translate -q -of JPEG -co QUALITY=90 -srcwin 100 120 80 64 "$out/cogeo_rgb_384x320.tif" \
  "$out/eval_set/cogeo_80x64.jpg"
gdal_translate "${q[@]}" -srcwin 120 60 72 64 "$out/landsat_rgba_240x200.tif" \
  "$out/eval_set/landsat_rgba_72x64.tif"
rm -f "$out"/eval_set/*.aux.xml
printf '# the evaluation set, relative to this folder\ncogeo_80x64.jpg\nlandsat_rgba_72x64.tif\nnaip_96x72.png\n' \
  > "$out/eval_set/list.txt"
ls -la "$out/eval_set"
