"""MiTBackbone: pyramid contract, saving, edge graph, presets, aliases."""

import keras
import numpy as np
import pytest

from edge_backbones.models.mit import (
    MiTB0Backbone,
    MiTB5Backbone,
    MiTBackbone,
)
from tests.models.backbone_harness import (
    run_backbone_test,
    run_edge_graph_test,
    run_model_saving_test,
)
from tests.tiny import TINY_MIT


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype("float32")


def test_backbone_contract_non_square():
    backbone, features = run_backbone_test(
        MiTBackbone, TINY_MIT, _images((2, 64, 96, 3))
    )
    assert [(i.name, i.channels, i.stride) for i in backbone.feature_info] == [
        ("P1", 8, 4), ("P2", 16, 8), ("P3", 24, 16), ("P4", 32, 32),
    ]  # fmt: skip
    assert features["P4"].shape == (2, 2, 3, 32)


def test_any_size_when_image_shape_is_open():
    backbone = MiTBackbone(**{**TINY_MIT, "image_shape": (None, None, 3)})
    features = backbone.feature_extractor()(_images((1, 50, 70, 3)))
    # PyTorch's Conv2d(k, s, padding=k // 2) gives ceil(size / stride).
    shapes = {name: tuple(value.shape) for name, value in features.items()}
    assert shapes == {
        "P1": (1, 13, 18, 8), "P2": (1, 7, 9, 16),
        "P3": (1, 4, 5, 24), "P4": (1, 2, 3, 32),
    }  # fmt: skip


def test_saving(tmp_path):
    run_model_saving_test(
        MiTBackbone, TINY_MIT, _images((1, 64, 96, 3)), tmp_path
    )


def test_edge_graph(tmp_path):
    model_file = run_edge_graph_test(
        MiTBackbone(**TINY_MIT), (64, 96), tmp_path
    )
    histogram = model_file.op_histogram
    # One exact GELU per block, one softmax per attention.
    assert histogram["GELU"] == histogram["SOFTMAX"] == sum(TINY_MIT["depths"])
    ops = set(histogram)
    assert ops <= {
        "ADD", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED", "GELU", "MEAN", "MUL", "PAD", "RESHAPE",
        "RSQRT", "SOFTMAX", "SUB", "TRANSPOSE",
    }, ops  # fmt: skip


def test_drop_path_only_in_training():
    backbone = MiTBackbone(**{**TINY_MIT, "max_drop_path_rate": 0.9})
    x = _images((4, 64, 96, 3))
    inference = keras.ops.convert_to_numpy(backbone(x))
    again = keras.ops.convert_to_numpy(backbone(x, training=False))
    np.testing.assert_array_equal(inference, again)
    keras.utils.set_random_seed(0)
    training = keras.ops.convert_to_numpy(backbone(x, training=True))
    assert np.abs(training - inference).max() > 1e-3


def test_preprocessing_is_what_the_graph_expects():
    plain = MiTBackbone(**TINY_MIT)
    assert plain.preprocessing["scale"] == pytest.approx(1 / 255)
    assert plain.preprocessing["mean"] == [0.485, 0.456, 0.406]
    assert plain.preprocessing["std"] == [0.229, 0.224, 0.225]
    assert plain.preprocessing["resize"] == "stretch"
    rescaling = MiTBackbone(**TINY_MIT, include_rescaling=True)
    prep = rescaling.preprocessing
    assert (prep["scale"], prep["mean"], prep["std"]) == (
        1.0,
        [0.0] * 3,
        [1.0] * 3,
    )
    # Same weights: the rescaling graph on 0-255 pixels is the plain graph
    # on pixels / 255.
    rescaling.set_weights(plain.get_weights())
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 64, 96, 3))
    pixels = pixels.astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(rescaling(pixels)),
        keras.ops.convert_to_numpy(plain(pixels / 255)),
        atol=1e-5,
    )


def test_keras_cv_aliases():
    backbone = MiTB0Backbone()
    assert isinstance(backbone, MiTBackbone)
    assert backbone.include_rescaling
    assert backbone.count_params() == 3319392
    assert tuple(backbone(np.ones((8, 224, 224, 3))).shape) == (8, 7, 7, 256)
    pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)(
        np.ones((1, 224, 224, 3))
    )
    assert {k: tuple(v.shape)[1:] for k, v in pyramid.items()} == {
        "P1": (56, 56, 32), "P2": (28, 28, 64),
        "P3": (14, 14, 160), "P4": (7, 7, 256),
    }  # fmt: skip
    images = keras.Input((128, 160, 3))
    built_on = MiTB0Backbone(include_rescaling=False, input_tensor=images)
    assert built_on.inputs[0] is images
    assert built_on.get_config()["image_shape"] == (128, 160, 3)
    assert not built_on.get_config()["include_rescaling"]


def test_bad_config_says_what_was_received():
    with pytest.raises(ValueError, match="hidden_dims=None"):
        MiTBackbone(**{**TINY_MIT, "hidden_dims": None})
    with pytest.raises(ValueError, match="num_heads=3"):
        MiTBackbone(**{**TINY_MIT, "hidden_dims": [8, 16, 20, 32]})


@pytest.mark.large
def test_mit_b5_alias_runs():
    backbone = MiTB5Backbone(input_shape=(256, 320, 3))
    assert tuple(backbone(np.ones((1, 256, 320, 3))).shape) == (1, 8, 10, 512)


@pytest.mark.large
def test_mit_b0_512_edge_graph(tmp_path):
    backbone = MiTBackbone.from_preset("mit_b0_ade20k_512", load_weights=False)
    model_file = run_edge_graph_test(backbone, (512, 512), tmp_path)
    histogram = model_file.op_histogram
    assert histogram["BATCH_MATMUL"] == 16
    assert histogram["GELU"] == histogram["SOFTMAX"] == 8
    # keras-hub's stock MiT-B0, converted the same way (batch 1, 512x512,
    # fp32), has 518 ops, 30 of them NEG and 30 SQUARED_DIFFERENCE.
    assert model_file.op_count <= 400, model_file.op_count
