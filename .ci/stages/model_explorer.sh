#!/usr/bin/env bash
# CI stage "model_explorer": installs the `explorer` extra
# (ai-edge-model-explorer and its TFLite adapter) and runs the test that
# loads --layer-report's node-data overlay with Model Explorer's own
# GraphNodeData class and matches its keys to the adapter's graph of the
# exported model. Without this stage that one test skips. Run as root from
# the repository root, after the package and its test extras.
set -euo pipefail
started=$(date +%s)
say() { echo "model_explorer stage: $* ($(($(date +%s) - started)) s)"; }

if ! python -c "import model_explorer, ai_edge_model_explorer_adapter" \
    2>/dev/null; then
    say "installing the explorer extra (ai-edge-model-explorer)"
    python -m pip install -q -e ".[explorer]"
fi
say "running tests/export/test_model_explorer_overlay.py"
log=$(mktemp)
python -m pytest -q -rs -p no:cacheprovider -m "explorer_stage or not large" \
    tests/export/test_model_explorer_overlay.py 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then exit "$status"; fi
if grep -q SKIPPED "$log"; then
    say "a Model Explorer test skipped with the package installed"
    exit 1
fi
say "done"
