#!/usr/bin/env bash
# Writes a large VRT mosaic of real imagery for benchmarks: the ten North Dakota
# NAIP scenes of ../shared/data/geotiff/opengeos_*.tif (934x723 each, 5 m,
# bands R,G,B) laid out in a grid, cycling through the dates.
# Usage: scripts/make_mosaic_vrt.sh OUT.vrt [WIDTH HEIGHT]   (default 20000 20000)
set -euo pipefail
out=$1 width=${2:-20000} height=${3:-20000}
src=$(cd "$(dirname "$0")/.." && cd "${SPYNCO_SHARED_DATA:-../shared/data}/geotiff" && pwd)
files=("$src"/opengeos_m_4709963_se_14_1_*.tif)
[ ${#files[@]} -gt 0 ] || { echo "no opengeos_*.tif under $src" >&2; exit 1; }
cw=934 ch=723
{
  echo "<VRTDataset rasterXSize=\"$width\" rasterYSize=\"$height\">"
  echo "  <SRS>EPSG:26914</SRS>"
  echo "  <GeoTransform>500000, 5, 0, 5300000, 0, -5</GeoTransform>"
  for band in 1 2 3; do
    interp=$([ $band = 1 ] && echo Red || ([ $band = 2 ] && echo Green || echo Blue))
    echo "  <VRTRasterBand dataType=\"Byte\" band=\"$band\"><ColorInterp>$interp</ColorInterp>"
    i=0
    for ((y = 0; y < height; y += ch)); do
      for ((x = 0; x < width; x += cw)); do
        f=${files[$((i % ${#files[@]}))]}; i=$((i + 1))
        echo "    <SimpleSource><SourceFilename relativeToVRT=\"0\">$f</SourceFilename><SourceBand>$band</SourceBand><SrcRect xOff=\"0\" yOff=\"0\" xSize=\"$cw\" ySize=\"$ch\"/><DstRect xOff=\"$x\" yOff=\"$y\" xSize=\"$cw\" ySize=\"$ch\"/></SimpleSource>"
      done
    done
    echo "  </VRTRasterBand>"
  done
  echo "</VRTDataset>"
} > "$out"
