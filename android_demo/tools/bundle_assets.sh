#!/usr/bin/env bash
# Fills app/src/main/assets with what the app runs: MiT-B0 exported for the
# cpu, npu_int8 and gpu targets (random weights unless a checkpoint folder
# is given)
# with their sidecar JSON, and a bundled photo. Run from the repository root
# with the package installed with [export]:
#   bash android_demo/tools/bundle_assets.sh [MODEL] [SIZE]
# e.g. bash android_demo/tools/bundle_assets.sh mit_b0 512
set -euo pipefail
model=${1:-mit_b0}
size=${2:-512}
assets=android_demo/app/src/main/assets
mkdir -p "$assets"
weights=()
[ -d "$model" ] || weights=(--random-weights)
edge-backbones export "$model" "${weights[@]}" --image-size "$size" \
    --target cpu,npu_int8,gpu --calibration calibration/ --out "$assets"
cp calibration/grace_hopper.jpg "$assets/photo.jpg"
ls -l "$assets"
