"""DEPTHWISE_CONV_2D -> grouped CONV_2D: the same numbers, the op gone."""

import numpy as np
import pytest

from edge_backbones.exporter.grouped_depthwise import depthwise_as_grouped_conv
from tests.tflite_ops import op_histogram

tf = pytest.importorskip("tensorflow")


def _depthwise_model(tmp_path, **layer):
    import keras

    keras.utils.set_random_seed(0)
    images = keras.Input((12, 10, 3), batch_size=1, name="images")
    # a conv before: the rewritten op shares the CONV_2D operator code
    x = keras.layers.Conv2D(4, 1, name="pointwise")(images)
    x = keras.layers.DepthwiseConv2D(3, name="depthwise", **layer)(x)
    model = keras.Model(images, x)
    model.export(str(tmp_path / "saved"), verbose=False)
    return str(tmp_path / "saved")


def _convert(saved, int16):
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    if int16:
        rng = np.random.default_rng(1)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.normal(size=(1, 12, 10, 3)).astype(np.float32)]
            for _ in range(8)
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    return converter.convert()


def _run(content, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    runner = interpreter.get_signature_runner()
    (name,) = runner.get_input_details()
    (out,) = runner(**{name: x}).values()
    return out


@pytest.mark.parametrize(
    "layer",
    [
        {"padding": "same"},
        {"padding": "valid", "strides": 2, "depth_multiplier": 2},
        {"padding": "same", "dilation_rate": 2, "use_bias": False},
    ],
    ids=["same", "stride2_multiplier2", "dilated_no_bias"],
)
@pytest.mark.parametrize("int16", [False, True], ids=["fp32", "int16x8"])
def test_rewrite_computes_the_same_numbers(tmp_path, layer, int16):
    content = _convert(_depthwise_model(tmp_path, **layer), int16)
    grouped = depthwise_as_grouped_conv(content)
    assert op_histogram(content)["DEPTHWISE_CONV_2D"] == 1
    assert "DEPTHWISE_CONV_2D" not in op_histogram(grouped)
    assert op_histogram(grouped)["CONV_2D"] == 2
    x = np.random.default_rng(2).normal(size=(1, 12, 10, 3))
    want = _run(content, x.astype(np.float32))
    got = _run(grouped, x.astype(np.float32))
    assert got.shape == want.shape
    if int16:  # integer kernels: the same sums, the same integers
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_shared_depthwise_layer_is_rewritten_once(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    images = keras.Input((8, 8, 3), batch_size=1, name="images")
    depthwise = keras.layers.DepthwiseConv2D(3, padding="same")
    model = keras.Model(images, depthwise(depthwise(images)))
    model.export(str(tmp_path / "saved"), verbose=False)
    content = _convert(str(tmp_path / "saved"), int16=False)
    x = np.random.default_rng(3).normal(size=(1, 8, 8, 3)).astype(np.float32)
    grouped = depthwise_as_grouped_conv(content)
    assert op_histogram(grouped) == {"CONV_2D": 2}
    np.testing.assert_allclose(
        _run(grouped, x), _run(content, x), rtol=1e-5, atol=1e-5
    )


def test_a_model_without_depthwise_comes_back_unchanged(tmp_path):
    import keras

    images = keras.Input((8, 8, 3), batch_size=1)
    model = keras.Model(images, keras.layers.Conv2D(2, 3)(images))
    model.export(str(tmp_path / "saved"), verbose=False)
    content = _convert(str(tmp_path / "saved"), int16=False)
    assert depthwise_as_grouped_conv(content) is content
