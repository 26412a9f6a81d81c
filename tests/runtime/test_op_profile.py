"""`bench --op-profile`: each op timed alone as a one-op model."""

import argparse

import numpy as np
import pytest

from edge_backbones.atomic_io import loads_json_strict
from edge_backbones.runtime import cli
from edge_backbones.runtime.model_file import read_model_file
from edge_backbones.runtime.op_profile import (
    _activations,
    format_op_profile,
    one_op_model,
    op_profile,
)


def _model(content):
    from ai_edge_litert.schema_py_generated import ModelT

    return ModelT.InitFromPackedBuf(content, 0)


@pytest.mark.parametrize("key", ["f32", "int8"])
def test_one_op_model_computes_what_the_op_computes(tiny, key):
    content = tiny["contents"][key]
    model = _model(content)
    full = _activations(content, 1)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # the reference kernels on both sides: XNNPACK rounds int8 differently
    reference = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    graph = model.subgraphs[0]
    activations = {int(t) for t in graph.inputs}
    for index, op in enumerate(graph.operators):
        packed, inputs = one_op_model(model, index)
        # weights stay constants in the cut (fed as inputs they would be
        # timed as dynamic weights, a different kernel)
        assert set(inputs) <= activations, f"op {index}: {inputs}"
        activations |= {int(t) for t in op.outputs}
        alone = Interpreter(
            model_content=packed, experimental_op_resolver_type=reference
        )
        alone.allocate_tensors()
        for detail, tensor in zip(alone.get_input_details(), inputs,
                                  strict=True):  # fmt: skip
            alone.set_tensor(detail["index"], full.get_tensor(tensor))
        alone.invoke()
        for detail, tensor in zip(alone.get_output_details(), op.outputs,
                                  strict=True):  # fmt: skip
            np.testing.assert_allclose(
                alone.get_tensor(detail["index"]),
                full.get_tensor(int(tensor)),
                rtol=1e-5,
                atol=1e-5,
                err_msg=f"op {index}",
            )


def test_profile_covers_every_op_once(tiny):
    path = tiny["paths"]["int8"]
    profile = op_profile(path, runs=3, warmup=1, top=2)
    histogram = read_model_file(path).op_histogram
    assert {r["op"]: r["count"] for r in profile["by_type"]} == histogram
    totals = [r["total_ms"] for r in profile["by_type"]]
    assert totals == sorted(totals, reverse=True)
    assert sum(totals) == pytest.approx(profile["sum_of_ops_ms"])
    assert sum(r["share"] for r in profile["by_type"]) == pytest.approx(1)
    assert len(profile["top_ops"]) == 2
    assert profile["top_ops"][0]["ms"] >= profile["top_ops"][1]["ms"]
    assert profile["whole_model_ms"] > 0
    assert "one-op" in format_op_profile(profile)


def test_the_heavy_op_gets_the_time(tmp_path):
    """A 64->64 3x3 conv at 64x64 is ~1000x the flops of the ADD after it.

    A ratio in the same run, not a timed assertion."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x = keras.Input((64, 64, 64), batch_size=1)
    y = keras.layers.Conv2D(64, 3, padding="same")(x)
    model = keras.Model(x, keras.layers.Add()([y, x]))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path = tmp_path / "heavy.tflite"
    path.write_bytes(converter.convert())
    profile = op_profile(path, runs=10, warmup=2)
    shares = {r["op"]: r["share"] for r in profile["by_type"]}
    assert shares["CONV_2D"] > 0.8, format_op_profile(profile)


def test_cli_op_profile_writes_strict_json(tiny, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "ops.json"
    args = parser.parse_args(["bench", str(tiny["paths"]["f32"]),
                              "--op-profile", "--runs", "2", "--warmup",
                              "0", "--json", str(out)])  # fmt: skip
    assert args.func(args) == 0
    document = loads_json_strict(out.read_text())
    (profile,) = document["op_profiles"]
    assert profile["by_type"][0]["op"] == "CONV_2D"
    assert "CONV_2D" in capsys.readouterr().out


def test_not_a_model_is_a_typed_error(tmp_path):
    from edge_backbones.errors import ModelFileError

    path = tmp_path / "notes.tflite"
    path.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a TFLite model"):
        op_profile(path)
