"""MAC counts read from a converted graph vs the layer arithmetic."""

import keras
import pytest

from edge_backbones.runtime.macs import count_macs

tf = pytest.importorskip("tensorflow")


def _convert(model):
    spec = tf.TensorSpec(model.inputs[0].shape, tf.float32)
    function = tf.function(lambda x: model(x), input_signature=[spec])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], model
    )
    return converter.convert()


def test_counts_each_op_kind_from_its_tensor_shapes():
    height, width, tokens = 16, 12, 48
    images = keras.Input((height, width, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same")(images)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Conv2D(16, 2, strides=2)(x)
    x = keras.layers.Reshape((tokens, 16))(x)
    x = keras.layers.Dense(10)(x)
    # both operand layouts of a batched matmul: x x^T, then (x x^T) x
    gram = keras.ops.matmul(x, keras.ops.transpose(x, (0, 2, 1)))
    out = keras.ops.matmul(gram, x)
    tflite = _convert(keras.Model(images, out))

    expected = {
        "CONV_2D": height * width * 8 * (3 * 3 * 3)
        + (height // 2) * (width // 2) * 16 * (2 * 2 * 8),
        "DEPTHWISE_CONV_2D": height * width * 8 * (3 * 3),
        "dense": tokens * 10 * 16,
        "matmuls": tokens * tokens * 10 + tokens * 10 * tokens,
    }
    macs = count_macs(tflite)
    by_op = macs["by_op"]
    assert by_op["CONV_2D"] == expected["CONV_2D"]
    assert by_op["DEPTHWISE_CONV_2D"] == expected["DEPTHWISE_CONV_2D"]
    # the converter may lower the 3-D Dense to FULLY_CONNECTED or to
    # BATCH_MATMUL; the total of the two does not depend on which
    matmul_like = by_op.get("FULLY_CONNECTED", 0) + by_op.get("BATCH_MATMUL")
    assert matmul_like == expected["dense"] + expected["matmuls"]
    assert macs["total"] == sum(expected.values())


def test_grouped_conv_counts_input_channels_per_group():
    images = keras.Input((8, 8, 8), batch_size=1)
    out = keras.layers.Conv2D(12, 3, padding="same", groups=4)(images)
    macs = count_macs(_convert(keras.Model(images, out)))
    assert macs["by_op"] == {"CONV_2D": 8 * 8 * 12 * (3 * 3 * 8 // 4)}
