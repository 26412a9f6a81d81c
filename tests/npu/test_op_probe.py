"""Single ops in QNN's simulated HTP vs LiteRT's int8 CPU kernels.

The finding docs/npu.md reports: QNN's int8 L2_NORMALIZATION truncates
toward zero where LiteRT's kernel rounds to nearest; both are checked
against the exact maths on random int8 rows, so a QAIRT release that
changes either shows here.
"""

import numpy as np
import pytest

from tests.npu.conftest import needs_npu_extra

pytestmark = [needs_npu_extra, pytest.mark.npu_stage]


@pytest.fixture(scope="module")
def l2_norm_op(tiny_npu_int8, tmp_path_factory):
    """The tiny artifact's first L2_NORMALIZATION alone, compiled."""
    from ai_edge_litert.tools import flatbuffer_utils

    from edge_backbones.npu.compile import run_plugin
    from edge_backbones.npu.op_probe import builtin_op_names, single_op_model
    from edge_backbones.npu.sdk import toolchain_for
    from edge_backbones.npu.socs import parse_socs

    model = flatbuffer_utils.read_model(tiny_npu_int8)
    graph, names = model.subgraphs[0], builtin_op_names()
    index = next(
        i
        for i, op in enumerate(graph.operators)
        if names[model.operatorCodes[op.opcodeIndex].builtinCode]
        == "L2_NORMALIZATION"
    )
    work = tmp_path_factory.mktemp("l2_norm_op")
    single = str(work / "op.tflite")
    (source,), (output,) = single_op_model(model, index, single)
    soc = parse_socs("SM8650")[0]
    compiled, _, _ = run_plugin(single, soc, toolchain_for(soc), str(work))
    return single, compiled, graph.tensors[source], graph.tensors[output]


def test_qnn_l2_normalization_truncates_where_litert_rounds(l2_norm_op):
    from ai_edge_litert.interpreter import Interpreter

    from edge_backbones.runtime.npu_engines import (
        QnnHtpSimulatorEngine,
        qnn_tensor_name,
    )

    single, compiled, source, output = l2_norm_op
    assert output.quantization.scale[0] == pytest.approx(1 / 128)
    x = np.random.default_rng(0).integers(
        -128, 128, size=tuple(source.shape), dtype=np.int8
    )
    centered = x.astype(np.float64) - source.quantization.zeroPoint[0]
    exact = 128 * centered / np.linalg.norm(centered, axis=-1, keepdims=True)
    cpu = Interpreter(model_path=single)
    cpu.allocate_tensors()
    cpu.set_tensor(cpu.get_input_details()[0]["index"], x)
    cpu.invoke()
    litert = cpu.get_tensor(cpu.get_output_details()[0]["index"])
    (htp,) = QnnHtpSimulatorEngine(compiled).run_named(
        [qnn_tensor_name(output.name.decode())],
        {qnn_tensor_name(source.name.decode()): x},
    )
    np.testing.assert_array_equal(litert, np.clip(np.rint(exact), -128, 127))
    np.testing.assert_array_equal(htp, np.clip(np.trunc(exact), -128, 127))
    # the difference is one step on about half the elements
    assert 0.3 < np.mean(htp != litert) < 0.7


def test_probe_ops_flags_l2_normalization_only(tiny_npu_int8, tmp_path):
    from edge_backbones.npu.op_probe import probe_ops
    from edge_backbones.npu.socs import parse_socs
    from edge_backbones.runtime.edge_model import EdgeModel

    model = EdgeModel(tiny_npu_int8)
    shape = (1, *model.input_spec.shape[1:])
    x = np.random.default_rng(1).integers(-128, 128, shape, dtype=np.int8)
    rows = probe_ops(
        tiny_npu_int8,
        [x],
        parse_socs("SM8650")[0],
        ("L2_NORMALIZATION", "GELU"),
        1,
        str(tmp_path),
    )
    by_kind = {row.kind: row.engines for row in rows}
    assert set(by_kind) == {"L2_NORMALIZATION", "GELU"}
    for engines in by_kind.values():
        assert engines["reference"][0] == 0.0
    off, worst, _ = by_kind["L2_NORMALIZATION"]["qnn-htp"]
    assert 0.2 < off and worst == 1
    assert by_kind["GELU"]["qnn-htp"][0] < 0.05


def test_replay_on_the_cpu_is_litert_and_on_the_htp_is_close(
    tiny_npu_int8, tmp_path
):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edge_backbones.npu.op_probe import builtin_op_names, replay
    from edge_backbones.npu.socs import parse_socs

    whole = Interpreter(
        model_path=tiny_npu_int8,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    whole.allocate_tensors()
    detail = whole.get_input_details()[0]
    x = np.random.default_rng(2).integers(
        -128, 128, detail["shape"], dtype=np.int8
    )
    whole.set_tensor(detail["index"], x)
    whole.invoke()
    want = {
        d["index"]: whole.get_tensor(d["index"])
        for d in whole.get_output_details()
    }
    run = replay(tiny_npu_int8, parse_socs("SM8650")[0], str(tmp_path))
    every_kind = tuple(builtin_op_names().values())
    on_cpu = run(x, every_kind)
    assert set(on_cpu) == set(want)
    for index, values in want.items():
        np.testing.assert_array_equal(on_cpu[index], values)
    on_htp = run(x)
    for index, values in want.items():
        a = values.astype(np.float64).ravel()
        b = on_htp[index].astype(np.float64).ravel()
        # different (L2_NORMALIZATION truncates) but the same features
        assert not np.array_equal(a, b)
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.95
