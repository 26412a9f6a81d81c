"""Compile a tiny npu artifact with LiteRT's plugins and run it simulated."""

import json

import numpy as np
import pytest

from edge_backbones.core.fidelity import compare, worst
from edge_backbones.runtime.metadata import file_sha256, sidecar_path
from tests.npu.conftest import needs_npu_extra

pytestmark = [needs_npu_extra, pytest.mark.npu_stage]


@pytest.fixture(scope="module")
def compiled(tiny_npu, tmp_path_factory):
    from edge_backbones.npu import compile_artifact

    out = tmp_path_factory.mktemp("compiled")
    results = compile_artifact(tiny_npu, "SM8650,intel-cpu", str(out))
    return {r.soc: r for r in results}


@pytest.mark.parametrize("soc", ["SM8650", "intel-cpu"])
def test_the_whole_graph_goes_to_the_accelerator(compiled, tiny_npu, soc):
    from edge_backbones.runtime.model_file import read_model_file

    result = compiled[soc]
    source_ops = read_model_file(tiny_npu).op_count
    assert (result.ops_on_npu, result.ops_total) == (source_ops, source_ops)
    assert result.partitions == 1 and result.fully_offloaded
    assert read_model_file(result.path).ops == ["CUSTOM:DISPATCH_OP"]


def test_compiled_metadata_and_sidecar(compiled, tiny_npu):
    from edge_backbones.runtime.edge_model import EdgeModel

    path = compiled["SM8650"].path
    model = EdgeModel(path)
    meta = model.metadata
    assert meta["schema"] == "edge_backbones.tflite/2"
    block = meta["compiled"]
    assert block["soc"] == "SM8650" and block["accelerator"] == "QNN HTP"
    assert block["sdk"]["qairt"] == "2.51.0"
    assert block["plugin"]["ai_edge_litert"] == "2.3.0"
    assert block["partitions"][0]["partitions"] == 1
    assert block["source"]["sha256"] == file_sha256(tiny_npu)
    with open(sidecar_path(path)) as f:
        sidecar = json.load(f)
    assert sidecar["sha256"] == file_sha256(path)


@pytest.mark.parametrize(
    "soc, engine", [("SM8650", "qnn-htp-simulator"),
                    ("intel-cpu", "openvino-cpu")],
)  # fmt: skip
def test_simulated_outputs_match_litert_cpu(compiled, tiny_npu, soc, engine):
    from edge_backbones.runtime.edge_model import EdgeModel

    simulated = EdgeModel(compiled[soc].path)
    assert simulated.active_delegate == engine
    assert simulated.fully_delegated is True
    cpu = EdgeModel(tiny_npu)
    rng = np.random.default_rng(0)
    inputs = [rng.normal(0, 1, cpu.input_spec.shape).astype(np.float32)
              for _ in range(3)]  # fmt: skip
    fidelity = compare(cpu.run_batch(inputs), simulated.run_batch(inputs))
    # two int8 implementations of the same graph: a few rounding steps apart
    assert worst(fidelity)[1]["cosine"] > 0.99


def test_a_compiled_file_is_not_compiled_again(compiled, tmp_path):
    from edge_backbones.errors import MetadataError
    from edge_backbones.npu import compile_artifact

    with pytest.raises(MetadataError, match="already compiled"):
        compile_artifact(compiled["SM8650"].path, "SM8750", str(tmp_path))


def test_export_gate_refuses_and_writes_nothing(tiny_npu, tmp_path):
    """A compiled file below the gate vs float is not written."""
    import os
    import shutil
    import types

    from edge_backbones.errors import FidelityError
    from edge_backbones.exporter.npu_gate import compile_verified
    from edge_backbones.npu.socs import parse_socs
    from edge_backbones.runtime.edge_model import EdgeModel

    source = tmp_path / "tiny_npu.tflite"
    shutil.copy(tiny_npu, source)
    model = EdgeModel(str(source))
    rng = np.random.default_rng(1)
    holdout = [rng.normal(0, 1, model.input_spec.shape[1:]).astype(np.float32)
               for _ in range(2)]  # fmt: skip
    # a float "reference" the int8 model cannot match: cosine ~0
    reference = {
        name: rng.normal(0, 1, (2, *spec.shape[1:]))
        for name, spec in model.output_specs.items()
    }
    record = types.SimpleNamespace(path=str(source), metadata=model.metadata)
    with pytest.raises(FidelityError, match="npu@SM8650"):
        compile_verified(record, parse_socs("SM8650"), holdout, reference,
                         0.9, lambda message: None)  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["tiny_npu.tflite"]
