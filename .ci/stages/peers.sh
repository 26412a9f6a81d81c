#!/usr/bin/env bash
# CI stage "peers": installs the `bench` extra (litert-torch 0.10 with
# jax/torchao, ai-edge-quantizer 0.10) and runs tests/benchmarks, whose
# end-to-end test converts a tiny SegFormer with our export, litert-torch
# and ai-edge-quantizer. Without this stage those tests skip. Run as root
# from the repository root, after the package and its test extras. Note:
# litert-torch's dependencies pin older pydantic / typing_extensions.
set -euo pipefail
started=$(date +%s)
say() { echo "peers stage: $* ($(($(date +%s) - started)) s)"; }

if ! python -c "import litert_torch, ai_edge_quantizer" 2>/dev/null; then
    say "installing the bench extra (litert-torch, ai-edge-quantizer)"
    python -m pip install -q -e ".[bench]"
fi
say "running tests/benchmarks"
log=$(mktemp)
python -m pytest -q -rs -p no:cacheprovider -m "peers_stage or not large" \
    tests/benchmarks 2>&1 \
    | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then exit "$status"; fi
if grep -q SKIPPED "$log"; then
    say "a peers test skipped with the bench extra installed"
    exit 1
fi
say "done"
