#!/usr/bin/env bash
# CI stage "matrix": the checks that export many artifacts each, kept out of
# the README's fast suite: every mode x target of the tiny segmenter and
# ViTDet, the quantization floors, Keras' own export and quantization, tf-keras
# models, the README's quickstart as written, the report of a recipe, the
# segmenter's edge-graph rules, and exports killed at each step.
# Needs only the package's test extras (no device tools); runs as root from
# the repository root, one pytest worker per core.
set -euo pipefail
started=$SECONDS
say() { echo "[matrix stage $((SECONDS - started)) s] $*"; }

say "pytest -m matrix_stage"
set +e
python -m pytest -q -n auto -m matrix_stage 2>&1 | grep -v "DestroyAccelerator"
status=${PIPESTATUS[0]}
set -e
say "done (exit $status)"
exit "$status"
