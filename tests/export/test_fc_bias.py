"""Zero biases on bias-less int8 FULLY_CONNECTED ops, and the runtime's
refusal of artifacts without them on tflite-runtime + aarch64."""

import dataclasses
import platform

import numpy as np
import pytest

from edge_backbones.errors import DelegateUnavailableError, ModelFileError
from edge_backbones.exporter.fc_bias import add_zero_fc_biases
from edge_backbones.runtime.delegates import parse_delegates
from edge_backbones.runtime.known_faults import tflite_runtime_fault


@pytest.fixture(scope="module")
def bias_less_fc():
    """Full-int8 bytes of relu(x @ W): one FULLY_CONNECTED with per-channel
    int8 weights and no bias, as the converter writes our projections."""
    import tensorflow as tf

    weights = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec((1, 4, 8), tf.float32)])
    def project(x):
        return tf.nn.relu(tf.matmul(x, weights))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [project.get_concrete_function()], project
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).normal(size=(1, 4, 8)).astype("float32")]
        for i in range(8)
    )
    return converter.convert()


def _interpreter(content, resolver=None):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {}
    if resolver:
        kwargs["experimental_op_resolver_type"] = getattr(
            OpResolverType, resolver
        )
    interpreter = Interpreter(model_content=content, num_threads=1, **kwargs)
    interpreter.allocate_tensors()
    return interpreter


def _fc(interpreter):
    (op,) = [
        o
        for o in interpreter._get_ops_details()
        if o["op_name"] == "FULLY_CONNECTED"
    ]
    return [int(i) for i in op["inputs"]]


def _outputs(content, resolver, inputs):
    interpreter = _interpreter(content, resolver)
    (source,), (sink,) = (
        interpreter.get_input_details(),
        interpreter.get_output_details(),
    )
    results = []
    for x in inputs:
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        results.append(interpreter.get_tensor(sink["index"]))
    return np.stack(results)


def test_the_bias_is_zero_with_tflite_scales(bias_less_fc):
    before = _interpreter(bias_less_fc)
    assert _fc(before)[2] == -1  # the case the hook exists for
    after = _interpreter(add_zero_fc_biases(bias_less_fc))
    x_index, w_index, bias_index = _fc(after)
    assert bias_index >= 0
    tensors = {t["index"]: t for t in after.get_tensor_details()}
    bias = tensors[bias_index]
    assert bias["dtype"] == np.int32
    assert not np.any(after.get_tensor(bias_index))
    input_scale = tensors[x_index]["quantization_parameters"]["scales"]
    weight_scales = tensors[w_index]["quantization_parameters"]["scales"]
    assert len(weight_scales) == 16  # per channel
    np.testing.assert_allclose(
        bias["quantization_parameters"]["scales"],
        input_scale[0] * weight_scales,
        rtol=1e-7,
    )


@pytest.mark.parametrize(
    "resolver", [None, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"]
)
def test_the_integers_do_not_change(bias_less_fc, resolver):
    inputs = np.random.default_rng(1).normal(size=(16, 1, 4, 8))
    inputs = inputs.astype("float32") * 3
    np.testing.assert_array_equal(
        _outputs(add_zero_fc_biases(bias_less_fc), resolver, inputs),
        _outputs(bias_less_fc, resolver, inputs),
    )


def test_a_model_with_biases_is_returned_unchanged(bias_less_fc):
    once = add_zero_fc_biases(bias_less_fc)
    assert add_zero_fc_biases(once) == once


def test_the_known_crash_is_found_on_arm_only(bias_less_fc):
    bias_less = _interpreter(bias_less_fc)
    reason = tflite_runtime_fault(bias_less, machine="aarch64")
    assert "1 int8 FULLY_CONNECTED op(s)" in reason
    assert tflite_runtime_fault(bias_less, machine="x86_64") is None
    # its portable kernels do not crash on it, they compute it wrong
    wrong = tflite_runtime_fault(bias_less, portable=True, machine="aarch64")
    assert "ignore per-channel scales" in wrong
    fixed = _interpreter(add_zero_fc_biases(bias_less_fc))
    assert tflite_runtime_fault(fixed, machine="aarch64") is None
    # its portable kernels ignore per-channel scales, bias or not
    wrong = tflite_runtime_fault(fixed, portable=True, machine="x86_64")
    assert "ignore per-channel scales" in wrong


def test_edge_model_refuses_it_on_tflite_runtime(
    bias_less_fc, tmp_path, monkeypatch
):
    from edge_backbones.runtime import EdgeModel

    path = tmp_path / "bias_less_fc.tflite"
    path.write_bytes(bias_less_fc)
    model = EdgeModel(path, backend="litert")  # LiteRT runs it anywhere
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    tflite_runtime = dataclasses.replace(model.backend, name="tflite_runtime")
    monkeypatch.setattr(model, "backend", tflite_runtime)
    interpreter = model._engine.interpreter
    xnnpack, portable = parse_delegates(("xnnpack", "portable"))
    with pytest.raises(ModelFileError, match="no bias.*backend='litert'"):
        model._refuse_known_fault(interpreter, xnnpack)
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    model._refuse_known_fault(interpreter, xnnpack)  # x86 runs it
    with pytest.raises(DelegateUnavailableError, match="per-channel scales"):
        model._refuse_known_fault(interpreter, portable)
