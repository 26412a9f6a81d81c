"""Code written for keras-hub, keras-cv, Hugging Face and Keras runs here."""

import os
import warnings

import keras
import numpy as np
import pytest

from edge_backbones.core.fidelity import cosine
from edge_backbones.errors import (
    InputError,
    WeightsNotFoundError,
)
from edge_backbones.models.mit import MiTBackbone
from edge_backbones.models.vit_det import ViTDetBackbone
from tests.tiny import TINY_MIT, TINY_VITDET

# keras-hub >= 0.18 spells five MiT arguments differently
KERAS_HUB_018 = {
    "layerwise_depths": TINY_MIT["depths"],
    "num_layers": 4,
    "layerwise_num_heads": TINY_MIT["blockwise_num_heads"],
    "layerwise_sr_ratios": TINY_MIT["blockwise_sr_ratios"],
    "max_drop_path_rate": 0.1,
    "layerwise_patch_sizes": TINY_MIT["patch_sizes"],
    "layerwise_strides": TINY_MIT["strides"],
    "image_shape": TINY_MIT["image_shape"],
    "hidden_dims": TINY_MIT["hidden_dims"],
}


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype("float32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x).astype("float32")


# ---- keras-hub argument names ----------------------------------------------


def test_keras_hub_018_names_build_the_same_model():
    old = MiTBackbone(**TINY_MIT, name="mit")
    new = MiTBackbone(**KERAS_HUB_018, name="mit")
    # one canonical set: the 0.17 names
    assert new.get_config() == old.get_config()
    assert "layerwise_depths" not in new.get_config()
    new.set_weights(old.get_weights())
    x = _images((1, 64, 96, 3))
    np.testing.assert_array_equal(_numpy(new(x)), _numpy(old(x)))


def test_configs_with_either_spelling_round_trip():
    reference = MiTBackbone(**TINY_MIT).get_config()
    for config in (KERAS_HUB_018, TINY_MIT):
        restored = MiTBackbone.from_config(dict(config))
        assert restored.get_config()["depths"] == TINY_MIT["depths"]
        assert restored.get_config() == {**reference, "name": restored.name}


def test_both_spellings_of_one_argument_is_an_error():
    with pytest.raises(InputError, match="layerwise_strides"):
        MiTBackbone(**{**TINY_MIT, "layerwise_strides": [4, 2, 2, 2]})
    missing = {
        k: v for k, v in KERAS_HUB_018.items() if k != "layerwise_depths"
    }
    with pytest.raises(TypeError, match="layerwise_depths"):
        MiTBackbone(**missing)


# ---- Hugging Face Backbone contract ----------------------------------------


@pytest.fixture(scope="module")
def mit():
    return MiTBackbone(**TINY_MIT)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"out_indices": 0}, "list or tuple"),
        ({"out_indices": (2, -3)}, "pyramid order"),
        ({"out_features": ["P2", "P1"]}, "pyramid order"),
        ({"out_features": []}, "picks no level"),
        ({"out_indices": []}, "picks no level"),
        ({"out_indices": [True]}, "not an int"),
        ({"out_indices": [1, -3]}, "twice"),
        ({"out_features": "P1"}, "list of level names"),
        ({"out_indices": [0], "out_features": ["P2"]}, "agree"),
    ],
)
def test_hugging_face_selection_rules(mit, kwargs, match):
    with pytest.raises(InputError, match=match):
        mit.select_features(**kwargs)
    assert issubclass(InputError, ValueError)  # what HF raises


def test_valid_selections_and_our_default(mit):
    assert mit.select_features() == ["P1", "P2", "P3", "P4"]  # HF: P4 only
    assert mit.select_features(out_indices=(1, -1)) == ["P2", "P4"]
    assert mit.select_features([0, 2], ["P1", "P3"]) == ["P1", "P3"]
    assert list(mit.feature_extractor(out_indices=[-2, -1]).output) == [
        "P3",
        "P4",
    ]


# ---- Keras mixed precision -------------------------------------------------


@pytest.mark.parametrize(
    "cls, config, shape",
    [
        (MiTBackbone, TINY_MIT, (1, 64, 96, 3)),
        (ViTDetBackbone, TINY_VITDET, (1, 32, 32, 3)),
    ],
)
def test_mixed_float16_reaches_every_layer(cls, config, shape):
    reference = cls(**config)
    mixed = cls(**config, dtype="mixed_float16")
    mixed.set_weights(reference.get_weights())
    layers = [
        layer
        for layer in mixed._flatten_layers(include_self=False)
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    assert {layer.dtype_policy.name for layer in layers} == {"mixed_float16"}
    # weights stay float32 (layer norms' gamma/beta included)
    assert {w.dtype for w in mixed.weights} == {"float32"}
    x = _images(shape)
    out = mixed(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    assert cosine(_numpy(out), _numpy(reference(x))) > 0.999
    restored = cls.from_config(mixed.get_config())
    assert restored.dtype_policy.name == "mixed_float16"


def test_layer_norm_statistics_in_float32_under_float16():
    from edge_backbones.models.layers import EdgeLayerNormalization

    # float16 activations of a few hundred: their variance overflows float16
    x = (_images((2, 3, 64), seed=1) * 150).astype("float16")
    half = EdgeLayerNormalization(dtype="mixed_float16")
    full = EdgeLayerNormalization()
    out = half(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    expected = _numpy(full(x.astype("float32")))
    np.testing.assert_allclose(_numpy(out), expected, atol=1e-2)


def test_global_dtype_policy_is_followed():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        backbone = MiTBackbone(**TINY_MIT)
    finally:
        keras.config.set_dtype_policy("float32")
    dense = [
        layer
        for layer in backbone._flatten_layers()
        if isinstance(layer, keras.layers.Dense)
    ]
    assert dense and {d.compute_dtype for d in dense} == {"float16"}
    out = backbone(_images((1, 64, 96, 3)))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"


# ---- Keras quantization ----------------------------------------------------


def _dense_layers(model):
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.Dense)
    ]


@pytest.mark.matrix_stage
@pytest.mark.parametrize(
    "cls, config, shape, mode, min_cosine",
    [
        (MiTBackbone, TINY_MIT, (1, 64, 96, 3), "int8", 0.99),
        (MiTBackbone, TINY_MIT, (1, 64, 96, 3), "int4", 0.9),
        (ViTDetBackbone, TINY_VITDET, (1, 32, 32, 3), "int8", 0.99),
    ],
)
def test_quantize_reaches_every_dense_layer(
    cls, config, shape, mode, min_cosine, tmp_path
):
    reference = cls(**config)
    quantized = cls.from_config(reference.get_config())
    quantized.set_weights(reference.get_weights())
    with warnings.catch_warnings():  # Keras lists layers it cannot quantize
        warnings.simplefilter("ignore")
        quantized.quantize(mode)
    dense = _dense_layers(quantized)
    assert dense and all(d.quantization_mode == mode for d in dense)
    x = _images(shape)
    expected = _numpy(quantized(x))
    assert cosine(expected, _numpy(reference(x))) > min_cosine
    # the quantized layers come back from a .keras file and a preset
    path = os.path.join(tmp_path, "quantized.keras")
    quantized.save(path)
    loaded = keras.saving.load_model(path)
    assert all(d.quantization_mode == mode for d in _dense_layers(loaded))
    np.testing.assert_array_equal(_numpy(loaded(x)), expected)
    quantized.save_to_preset(os.path.join(tmp_path, "preset"))
    preset = cls.from_preset(os.path.join(tmp_path, "preset"))
    np.testing.assert_array_equal(_numpy(preset(x)), expected)


def test_dtype_policy_map_quantizes_the_named_layers():
    policy = keras.dtype_policies.DTypePolicyMap()
    policy["stage1_block0_mlp_fc1"] = keras.dtype_policies.get(
        "int8_from_float32"
    )
    policy["stage2_block1_attention/query"] = keras.dtype_policies.get(
        "int8_from_float32"
    )
    backbone = MiTBackbone(**TINY_MIT, dtype=policy)
    quantized = sorted(
        d.path for d in _dense_layers(backbone) if d.quantization_mode
    )
    assert quantized == [
        "stage1_block0_mlp_fc1",
        "stage2_block1_attention/query",
    ]


# ---- keras-cv habits ---------------------------------------------------


def test_missing_preset_weights_say_what_happened(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="keras-cv's 'mit_b0'") as caught:
        MiTBackbone.from_preset("mit_b0")
    assert isinstance(caught.value, WeightsNotFoundError)
    assert isinstance(caught.value, FileNotFoundError)
    assert "nvidia/mit-b0" in str(caught.value)
    assert "load_weights=False" in str(caught.value)
    # keras-cv's name for the trained MiT-B0 looks where mit_b0's are
    with pytest.raises(WeightsNotFoundError, match="nvidia/mit-b0"):
        MiTBackbone.from_preset("mit_b0_imagenet")


# ---- keras-hub's documented usage -----------------------------------------


def test_model_on_backbone_inputs_does_not_warn(mit):
    model = keras.Model(inputs=mit.inputs, outputs=mit.pyramid_outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        features = model(_images((1, 64, 96, 3)))
    assert list(features) == ["P1", "P2", "P3", "P4"]
    assert mit.inputs[0].shape == (None, 64, 96, 3)


# ---- Keras' own export -----------------------------------------------------


@pytest.mark.matrix_stage
@pytest.mark.parametrize(
    "cls, config, size",
    [
        (MiTBackbone, {**TINY_MIT, "image_shape": (32, 32, 3)}, (32, 32)),
        (ViTDetBackbone, TINY_VITDET, (32, 32)),
    ],
)
def test_keras_export_litert_and_saved_model(cls, config, size, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    backbone = cls(**config)
    assert tuple(backbone.inputs[0].shape) == (None, *size, 3)
    x = _images((1, *size, 3))
    expected = _numpy(backbone(x))
    path = os.path.join(tmp_path, "model.tflite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone.export(path, format="litert", verbose=False)
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner()
    (got,) = runner(**{runner.get_input_details().popitem()[0]: x}).values()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    saved = os.path.join(tmp_path, "saved_model")
    backbone.export(saved, format="tf_saved_model", verbose=False)
    reloaded = keras.layers.TFSMLayer(saved, call_endpoint="serve")
    np.testing.assert_allclose(_numpy(reloaded(x)), expected, atol=1e-5)
