#!/usr/bin/env bash
# Cluster stage: `report --cluster` on a local Ray cluster (127.0.0.1 only):
# a head that takes the `laptop` rows and one worker node that takes the
# `fake-pi` rows. tests/cluster/test_stage.py runs a small recipe (two tiny
# models, two modes, two devices) while the fake-pi node's worker kills
# itself during its first row (EDGE_BACKBONES_TEST_KILL_ROW_ONCE), then
# checks every row is there exactly once and the fidelity equals a serial
# export's.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off
echo "cluster stage: installing the cluster extra"
python -m pip install -q -e ".[export,report,test,cluster]"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
export RAY_ADDRESS="127.0.0.1:$port" PYTHONPATH="$PWD"
export EDGE_BACKBONES_CLUSTER_ADDRESS="127.0.0.1:$port"
export EDGE_BACKBONES_CLUSTER_KILLED="$work/killed"
# Ray's token authentication, with this run's own token in the environment
# of every node and of the driver (nothing written to ~/.ray)
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$(python -c "import secrets; print(secrets.token_hex(32))")
export RAY_AUTH_TOKEN
stop() { ray stop --force >/dev/null 2>&1 || true; rm -rf "$work"; }
trap stop EXIT
echo "cluster stage: head on 127.0.0.1:$port (device:laptop)"
ray start --head --node-ip-address 127.0.0.1 --port "$port" \
    --num-cpus 2 --include-dashboard false --disable-usage-stats \
    --resources '{"device:laptop": 1}' >/dev/null
echo "cluster stage: worker node (device:fake-pi), its first row killed"
EDGE_BACKBONES_TEST_KILL_ROW_ONCE="$EDGE_BACKBONES_CLUSTER_KILLED" \
    ray start --address "127.0.0.1:$port" --node-ip-address 127.0.0.1 \
    --num-cpus 1 --resources '{"device:fake-pi": 1}' >/dev/null
set +e
# the plain suite runs the other tests/cluster tests (without Ray)
timeout 600 python -m pytest tests/cluster -m "cluster_stage or not large" \
    -k "not never_imports_ray" -q -s -p no:cacheprovider 2>&1 \
    | grep -v "DestroyAccelerator"
status=${PIPESTATUS[0]}
echo "cluster stage: done in $((SECONDS - started)) s (exit $status)"
exit "$status"
