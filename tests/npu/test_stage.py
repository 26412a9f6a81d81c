"""The NPU stage's checks on real backbones (.ci/stages/npu.sh runs them).

The stage exports MiT-B0 and a small ViTDet as `npu` artifacts with
`--soc SM8650` (export/npu_sm8650.toml). Every compiled file must have all
its ops on the NPU in one partition, for SM8650 and SM8750. Numerics, the
stage's target: per level, QNN's simulated HTP is within cosine 0.001 of
LiteRT's CPU run of the same artifact, both as the move of the cosine to
the float model and directly. The a16w8 `npu` recipe meets it because
int16 steps are 256x smaller than int8's, where two kernels' one-step
rounding differences are as large as the quantization error (figures:
docs/results/npu.md).
"""

import glob
import json
import os

import numpy as np
import pytest

from tests.npu.conftest import needs_npu_extra

ARTIFACTS = os.environ.get("EDGE_BACKBONES_NPU_ARTIFACTS")

pytestmark = [
    pytest.mark.npu_stage,
    needs_npu_extra,
    pytest.mark.skipif(
        not ARTIFACTS,
        reason="EDGE_BACKBONES_NPU_ARTIFACTS is unset: .ci/stages/npu.sh "
        "exports the artifacts these checks read",
    ),
]


def _pairs():
    if not ARTIFACTS:
        return []
    compiled = sorted(glob.glob(os.path.join(ARTIFACTS, "*_SM8650.tflite")))
    return [(p.replace("_SM8650.tflite", ".tflite"), p) for p in compiled]


def _json(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        return json.load(f)


def test_both_backbones_were_compiled():
    names = {_json(c)["model"]["name"] for _, c in _pairs()}
    assert names == {"mit_b0", "vit_det_small"}


@pytest.mark.parametrize("source, compiled", _pairs())
def test_every_op_runs_on_the_npu(source, compiled):
    block = _json(compiled)["compiled"]
    (partition,) = block["partitions"]
    assert partition["ops_on_npu"] == partition["ops_total"]
    assert partition["ops_total"] == _json(source)["graph"]["op_count"]
    assert partition["partitions"] == 1 and block["cpu_op_kinds"] == {}


GAP = 0.001
DIRECT = 0.999


@pytest.mark.parametrize("source, compiled", _pairs())
def test_simulated_numerics_match_litert_cpu(source, compiled):
    cpu = _json(source)["fidelity"]["levels"]
    meta = _json(compiled)
    simulated = meta["fidelity"]["levels"]
    assert meta["fidelity"]["label"] == "NPU numerics (simulated)"
    for level, figures in cpu.items():
        gap = abs(figures["cosine"] - simulated[level]["cosine"])
        assert gap <= GAP, (level, figures, gap)
    direct = meta["compiled"]["numerics_vs_cpu"]["levels"]
    assert min(v["cosine"] for v in direct.values()) >= DIRECT


@pytest.mark.parametrize("source, compiled", _pairs())
def test_the_compiled_file_runs_in_the_simulator(
    source, compiled, calibration_dir
):
    from edge_backbones.runtime.edge_model import EdgeModel

    simulated = EdgeModel(compiled)
    assert simulated.active_delegate == "qnn-htp-simulator"
    cpu = EdgeModel(source)
    photo = sorted(calibration_dir.glob("*.jpg"))[-1]
    x = cpu.preprocess(str(photo))
    want, got = cpu(x), simulated(x)
    for level in want:
        a, b = want[level].ravel(), got[level].ravel()
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.985


@pytest.mark.parametrize("source, compiled", _pairs())
def test_sm8750_takes_every_op_too(source, compiled, tmp_path):
    from edge_backbones.npu import compile_artifact

    (result,) = compile_artifact(source, "SM8750", str(tmp_path))
    assert result.fully_offloaded
    assert result.ops_on_npu == result.ops_total
