#!/usr/bin/env bash
# NPU stage: compile MiT-B0 and a small ViTDet `npu` artifact ahead of time
# for the Snapdragon 8 Gen 3 (SM8650) with LiteRT's Qualcomm plugin, run the
# compiled binaries in QNN's x86 HTP simulator, and check that the NPU takes
# every op (SM8650 and SM8750) and that the simulated numerics match
# LiteRT's CPU int8 run (tests/npu/test_stage.py says how closely).
# A tiny SAM pair at 512 goes the same way (tests/npu/test_sam_stage.py):
# encoder and decoder compiled, every op on the HTP, numerics gated.
# Installs the `npu` extra: onnxruntime-qnn carries QAIRT's x86 libraries,
# openvino the Intel plugin's runtime. Simulated figures are numerics, never
# device speed.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
echo "npu stage: installing the npu extra"
python -m pip install -q -e ".[export,test,npu]"
out=artifacts/npu_sm8650
rm -rf "$out"
echo "npu stage: export + compile + simulate (export/npu_sm8650.toml)"
edge-backbones export --recipe export/npu_sm8650.toml --out "$out"
photo=$(find calibration -maxdepth 1 -name '*.jpg' | sort | head -n 1)
for compiled in "$out"/*_SM8650.tflite; do
    edge-backbones run "$compiled" "$photo"
done
echo "npu stage: tests/npu with the extra, including the npu_stage checks"
set +e
EDGE_BACKBONES_NPU_ARTIFACTS="$out" python -m pytest tests/npu \
    -m "npu_stage or not large" -q -p no:cacheprovider 2>&1 \
    | grep -v "DestroyAccelerator"
status=${PIPESTATUS[0]}
echo "npu stage: done in $((SECONDS - started)) s (exit $status)"
exit "$status"
