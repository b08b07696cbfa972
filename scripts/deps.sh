#!/usr/bin/env bash
# Installs what Spynco needs to build and test, from Debian 12's packages.
# Idempotent and quiet: does nothing (and prints nothing) when all is there.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libgdal-dev gdal-bin libproj-dev
  libhdf5-dev hdf5-tools
  libopenblas-dev libcjson-dev
  libyaml-dev zlib1g-dev       # recipes (spynco run): YAML parser; CRC-32 of outputs
  clang libclang-rt-14-dev     # scripts/fuzz.sh: clang 14 and its libFuzzer runtime
  libopenmpi-dev openmpi-bin   # distributed training and runs (mpirun); optional at build time
  python3-h5py python3-numpy   # tests: checkpoints written/read by h5py
  time                         # benchmarks: /usr/bin/time -v for peak memory
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
