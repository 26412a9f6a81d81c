#!/usr/bin/env bash
# CI stage "gpu": LiteRT's GPU accelerator, for real, on software Vulkan.
# 1. Debian 12's own lavapipe (Mesa 22.3, unusable by the accelerator),
#    unpacked privately: trying the GPU with TensorFlow loaded falls back
#    with one warning and the process exits 0 (it used to abort, 134).
# 2. SwiftShader (pinned npm package): the `gpu` artifacts of MiT-B0 and a
#    small ViTDet, two sizes each, run fully on the GPU accelerator within
#    cosine 0.9999 of fp32 on XNNPACK; a graph the GPU refuses in part
#    fails the export check naming its ops.
# Software drivers: every figure here is numerics, never a GPU speed.
# Runs as root from the repo root after the package and its test extras.
set -euo pipefail
started=$SECONDS
prefix="${EDGE_BACKBONES_VULKAN_PREFIX:-/opt/edge_backbones/vulkan}"
say() { echo "[gpu stage $((SECONDS - started)) s] $*"; }

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  say "installing nodejs + npm (to fetch SwiftShader from npm)"
  apt-get install -y -q --no-install-recommends nodejs npm >/dev/null
fi
say "installing Debian 12's lavapipe (privately) and SwiftShader"
mesa22_env="$(benchmarks/gpu/install_software_vulkan.sh lavapipe-22 "$prefix")"
swiftshader_env="$(benchmarks/gpu/install_software_vulkan.sh swiftshader "$prefix")"

say "GPU fallback with TensorFlow loaded, on Debian 12's lavapipe"
(
  # shellcheck disable=SC1090
  source "$mesa22_env"
  python -m pytest -q -m "gpu_stage or not large" \
    tests/runtime/test_gpu_probe.py
)

say "gpu artifacts on LiteRT's GPU accelerator over SwiftShader"
log="$(mktemp)"
status=0
(
  # shellcheck disable=SC1090
  source "$swiftshader_env"
  python -m pytest -q -rPs -m "gpu_stage or not large" \
    tests/runtime/test_gpu_probe.py \
    tests/export/test_gpu_accelerator.py \
    tests/report/test_gpu_row.py::test_report_times_gpu_artifacts_on_the_gpu
) >"$log" 2>&1 || status=$?
grep -E "GPU-CHECK|SKIPPED|FAILED|ERROR|passed|failed" "$log" || true
if [ "$status" -ne 0 ]; then
  tail -n 60 "$log"
  say "failed (pytest exit $status)"
  exit "$status"
fi
if grep -q "SKIPPED" "$log"; then
  say "a GPU test skipped with SwiftShader selected: a failure here"
  exit 1
fi
say "done in $((SECONDS - started)) s"
