#!/usr/bin/env bash
# Raspberry Pi, emulated: the runtime-only install on aarch64 computes what
# x86 computes. Builds (or reuses) a Debian bookworm arm64 root filesystem
# with two venvs (ai-edge-litert; tflite-runtime + numpy<2), exports tiny
# MiT and ViTDet artifacts on x86 and records their outputs (through LiteRT
# and through x86 tflite-runtime, the reference of each), then, under
# qemu-user as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5), runs the device
# tests (tests/device, with a tiny segmenter's mask agreement) through
# both interpreters, a report whose device
# block says it was emulated, and a merge with the x86 report. Fails on any
# output out of bounds (runtime.parity.verdict). Needs root.
# EDGE_BACKBONES_CACHE keeps the rootfs between runs (~/.cache/edge_backbones).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
step() { echo "[pi] +$(($(date +%s) - started))s $*"; }
WORK="${EDGE_BACKBONES_PI_WORK:-$(mktemp -d /tmp/edge_backbones_pi.XXXXXX)}"
export EDGE_BACKBONES_PI_WORK="$WORK" PYTHONPATH="$PWD"
export TF_CPP_MIN_LOG_LEVEL=2
pi() { benchmarks/pi/rootfs.sh run "$@"; }

step "arm64 rootfs and venvs (cached in ${EDGE_BACKBONES_CACHE:-~/.cache/edge_backbones})"
benchmarks/pi/rootfs.sh build

step "our wheel, built from a copy (no build/ left in the checkout)"
rm -rf "$WORK/src" "$WORK/wheel" && mkdir -p "$WORK/src"
cp -r pyproject.toml README.md edge_backbones "$WORK/src/"
python -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheel" \
  "$WORK/src"
wheel=$(ls "$WORK"/wheel/edge_backbones-*.whl)
benchmarks/pi/rootfs.sh install "$wheel"

step "tiny artifacts exported on x86, x86 outputs recorded"
python benchmarks/pi/make_artifacts.py "$WORK/ref" 2>"$WORK/export.log" \
  || { tail -30 "$WORK/export.log"; exit 1; }
# tflite-runtime has other kernels than LiteRT: the Pi's tflite-runtime
# runs are compared with x86 tflite-runtime (2.14 wheels: CPython <= 3.11;
# numpy<2 kept apart from the host's packages)
X86_TFLITE="${EDGE_BACKBONES_CACHE:-$HOME/.cache/edge_backbones}/pi/x86-tflite"
if [ ! -f "$X86_TFLITE/.ok" ]; then
  python -m pip install -q --disable-pip-version-check --upgrade \
    --target "$X86_TFLITE" "tflite-runtime==2.14.0" "numpy<2" 2>&1 \
    | grep -v -e "dependency resolver" -e "which is incompatible" \
        -e "Running pip as" || true
  PYTHONPATH="$X86_TFLITE" python -c "import tflite_runtime.interpreter" \
    || { echo "[pi] no tflite-runtime 2.14 wheel for this Python" \
           "(it has CPython 3.8-3.11)" >&2; exit 1; }
  touch "$X86_TFLITE/.ok"
fi
PYTHONPATH="$X86_TFLITE:$PWD" python benchmarks/pi/compare.py record \
  "$WORK/ref" x86_tflite_runtime --backend tflite_runtime \
  --delegates xnnpack,cpu 2>>"$WORK/export.log"
# the tiny segmenter's class maps too (tests/device scores mask agreement)
PYTHONPATH="$X86_TFLITE:$PWD" python benchmarks/pi/compare.py record \
  "$WORK/ref/segmenter" x86_tflite_runtime --backend tflite_runtime \
  --delegates xnnpack,cpu 2>>"$WORK/export.log"
# the tiny SAM pair (fp32, int8_mixed) and its SamPredictor outputs on
# x86, through each interpreter package (tests/device scores mask IoU)
python benchmarks/pi/sam_pair.py export "$WORK/ref/sam" 2>>"$WORK/export.log"
python benchmarks/pi/sam_pair.py record "$WORK/ref/sam" x86 \
  --backend litert 2>>"$WORK/export.log"
PYTHONPATH="$X86_TFLITE:$PWD" python benchmarks/pi/sam_pair.py record \
  "$WORK/ref/sam" x86_tflite_runtime --backend tflite_runtime \
  2>>"$WORK/export.log"
# the tests and scripts, not the package: the rootfs imports the wheel
rm -rf "$WORK/repo" && mkdir -p "$WORK/repo"
cp -r tests benchmarks pyproject.toml "$WORK/repo/"

failed=()
for cpu in cortex-a72 cortex-a76; do
  for backend in litert tflite_runtime; do
    venv=$([ "$backend" = litert ] && echo litert || echo tflite)
    step "device tests: $cpu, $backend"
    if ! pi "$cpu" /usr/bin/env EDGE_BACKBONES_DEVICE_REF=/work/ref \
        EDGE_BACKBONES_DEVICE_BACKEND="$backend" \
        EDGE_BACKBONES_DEVICE_RUN="${backend}_${cpu}" \
        /bin/sh -c "cd /work/repo && /opt/$venv/bin/python -m pytest \
          tests/device -q -p no:cacheprovider"
    then
      failed+=("$cpu/$backend")
    fi
  done
done

step "report --artifacts inside the emulated Pi 4, merged with x86's"
# two artifacts keep it short: each row is timed in a fresh process
rm -rf "$WORK/report" "$WORK/report_artifacts"
mkdir -p "$WORK/report_artifacts"
cp "$WORK"/ref/artifacts/mit_tiny_64x64_{fp32,npu}.* "$WORK/report_artifacts/"
pi cortex-a72 /opt/litert/bin/python -m edge_backbones.cli report \
  --artifacts /work/report_artifacts --device-name pi4-qemu --threads 1 \
  --runs 3 --warmup 1 --out /work/report
python -m edge_backbones.cli report --artifacts "$WORK/report_artifacts" \
  --device-name x86 --threads 1 --runs 3 --warmup 1 --out "$WORK/report"
python -m edge_backbones.cli report merge "$WORK/report/pi4-qemu.json" \
  "$WORK/report/x86.json" --out "$WORK/report/merged"
python - "$WORK/report" <<'PY'
import json, pathlib, sys
report = pathlib.Path(sys.argv[1])
device = json.loads((report / "pi4-qemu.json").read_text())["device"]
assert device["emulated"] == "qemu-user cortex-a72", device["emulated"]
assert device["os"]["machine"] == "aarch64", device["os"]
markdown = (report / "merged" / "report.md").read_text()
assert "## Device: pi4-qemu" in markdown and "## Device: x86" in markdown
assert markdown.count("(emulated, not Pi speed)") == 3, "latency columns"
print("[pi] merged report:", report / "merged" / "report.md")
PY

step "ARM vs x86, every artifact x delegate"
python benchmarks/pi/compare.py table "$WORK/ref" litert_cortex-a72 \
  litert_cortex-a76 tflite_runtime_cortex-a72 tflite_runtime_cortex-a76 \
  --out "$WORK/parity.md"

step "done in $(($(date +%s) - started)) s (work folder $WORK)"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[pi] FAILED: device tests on ${failed[*]}" >&2
  exit 1
fi
