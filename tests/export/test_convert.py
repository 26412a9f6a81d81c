"""Conversion modes, the builtins-only rule and the GPU check."""

import keras
import pytest
from keras import ops

from edge_backbones.errors import ExportError
from edge_backbones.exporter.convert import Converter, gpu_compatibility
from edge_backbones.exporter.graph import serving_model, write_saved_model
from edge_backbones.models.backbone import Backbone, FeatureInfo
from edge_backbones.runtime.model_file import read_model_file


class _ErfBackbone(Backbone):
    """erf has no TFLite builtin: it lowers to a Flex op."""

    def __init__(self, **kwargs):
        images = keras.Input((8, 8, 3), name="images")
        p1 = keras.layers.Lambda(ops.erf)(images)
        super().__init__(images, p1, **kwargs)
        self._set_pyramid({"P1": p1}, [FeatureInfo("P1", 3, 1)])


@pytest.fixture(scope="module")
def saved(tiny_backbone, tmp_path_factory):
    path = tmp_path_factory.mktemp("sm") / "saved_model"
    return write_saved_model(serving_model(tiny_backbone, (32, 32)), path)


def test_float_modes(saved):
    converter = Converter(saved)
    fp32 = read_model_file(converter.fp32())
    # a static graph: no shape plumbing, rank <= 4
    assert not {"SHAPE", "GATHER", "PACK"} & set(fp32.op_histogram)
    assert fp32.max_tensor_rank <= 4
    fp16 = read_model_file(converter.fp16())
    assert "float16" in fp16.tensor_types
    assert gpu_compatibility(converter.fp32()) == (True, [])


def test_calibrated_modes_need_images(saved):
    with pytest.raises(ExportError, match="calibration"):
        Converter(saved).int8()


def test_flex_ops_fail_unless_allowed(tmp_path):
    saved = write_saved_model(
        serving_model(_ErfBackbone(), (8, 8)), tmp_path / "sm"
    )
    with pytest.raises(ExportError, match="Erf.*allow-flex"):
        Converter(saved).fp32()
    allowed = read_model_file(Converter(saved, allow_flex=True).fp32())
    assert any(op.startswith("CUSTOM:Flex") for op in allowed.ops)


def test_calibrated_modes_with_flex_ops_are_a_clear_error(tmp_path):
    import numpy as np

    saved = write_saved_model(
        serving_model(_ErfBackbone(), (8, 8)), tmp_path / "sm"
    )

    def dataset():
        for seed in range(2):
            x = np.random.default_rng(seed).normal(size=(1, 8, 8, 3))
            yield {"images": x.astype(np.float32)}

    converter = Converter(saved, dataset, allow_flex=True)
    # calibration cannot run Flex ops: allow_flex is no way out
    for convert in (converter.int8, converter.int16x8):
        with pytest.raises(ExportError, match="even with allow_flex"):
            convert()


def test_dequantize_weights_with_a_shared_buffer():
    """Two depthwise weights with equal int8 bytes share one buffer."""
    import numpy as np
    import tensorflow as tf

    from edge_backbones.exporter.convert import dequantize_weights
    from edge_backbones.runtime.backends import load_backend

    # k and 2k quantize (per channel) to the same int8 bytes, which the
    # converter deduplicates into one buffer; their scales differ
    kernel = np.random.default_rng(0).normal(size=(3, 3, 128, 1))
    kernel = kernel.astype(np.float32)

    class Model(tf.Module):
        @tf.function(
            input_signature=[tf.TensorSpec((1, 8, 8, 128), tf.float32)]
        )
        def run(self, x):
            for k in (kernel, 2 * kernel):
                x = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME")
            return {"out": x}

    model = Model()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [model.run.get_concrete_function()], model
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    content = converter.convert()
    assert read_model_file(content).tensor_types.count("int8") == 2
    floats = dequantize_weights(content, ["DEPTHWISE_CONV_2D"])
    assert "int8" not in read_model_file(floats).tensor_types
    interpreter = load_backend().Interpreter(model_content=floats)
    interpreter.allocate_tensors()
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 128))
    x = x.astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    want = model.run(tf.constant(x))["out"].numpy()
    # int8-rounded weights: within 2% of the float result's range
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()
