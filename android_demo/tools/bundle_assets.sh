#!/usr/bin/env bash
# Fills app/src/main/assets with what the app runs, each .tflite beside its
# sidecar JSON, and a bundled photo:
# - a backbone (MiT-B0 unless MODEL names another preset or a checkpoint
#   folder) for the cpu, npu_int8 and gpu targets;
# - a segmenter (SegFormer on MiT-B0) for the same targets: the folder given
#   with --segmenter, else random weights (150 classes);
# - a SAM encoder + decoder pair for the cpu target (float I/O, which
#   LiteRT's Kotlin TensorBuffer binds): the folder given with --sam (at
#   --sam-size, default the checkpoint's natural 1024), else the tests' tiny
#   random SamModel at 64x64.
# Run from the repository root with the package installed with [export]:
#   bash android_demo/tools/bundle_assets.sh [MODEL] [SIZE] [--segmenter DIR]
#       [--sam DIR] [--sam-size N]
# e.g. bash android_demo/tools/bundle_assets.sh mit_b0 512
set -euo pipefail
model=mit_b0
size=512
segmenter=
sam=
sam_size=
positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        --segmenter) segmenter=$2; shift 2 ;;
        --sam) sam=$2; shift 2 ;;
        --sam-size) sam_size=$2; shift 2 ;;
        *) positional+=("$1"); shift ;;
    esac
done
[ ${#positional[@]} -ge 1 ] && model=${positional[0]}
[ ${#positional[@]} -ge 2 ] && size=${positional[1]}
assets=android_demo/app/src/main/assets
mkdir -p "$assets"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

weights=()
[ -d "$model" ] || weights=(--random-weights)
edge-backbones export "$model" "${weights[@]}" --image-size "$size" \
    --target cpu,npu_int8,gpu --calibration calibration/ --out "$assets"

if [ -z "$segmenter" ]; then
    segmenter="$work/segformer_b0_random"
    python android_demo/tools/random_checkpoints.py segformer "$segmenter"
fi
edge-backbones export "$segmenter" --task segmentation --image-size "$size" \
    --target cpu,npu_int8,gpu --calibration calibration/ --out "$assets"

if [ -z "$sam" ]; then
    sam="$work/sam_tiny_random"
    sam_size=${sam_size:-64}
    python android_demo/tools/random_checkpoints.py sam "$sam"
fi
sam_flags=()
[ -n "$sam_size" ] && sam_flags=(--image-size "$sam_size")
edge-backbones export "$sam" "${sam_flags[@]}" --target cpu \
    --calibration calibration/ --out "$assets"

cp calibration/grace_hopper.jpg "$assets/photo.jpg"
ls -l "$assets"
