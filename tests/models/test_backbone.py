"""The Backbone base class, on `tests.tiny.TinyConvBackbone`."""

import keras
import numpy as np
import pytest

from edge_backbones.errors import CheckpointError, UnknownPresetError
from edge_backbones.models.backbone import Backbone
from edge_backbones.models.layers import (
    EdgeLayerNormalization,
    integer_layer_norm,
    integer_softmax,
    softmax_float32,
)
from tests.models.backbone_harness import (
    run_backbone_test,
    run_edge_graph_test,
    run_model_saving_test,
)
from tests.tiny import TinyConvBackbone


def test_layer_norm_matches_keras():
    x = np.random.default_rng(0).normal(3.0, 2.0, (2, 5, 7)).astype("float32")
    ours = EdgeLayerNormalization(epsilon=1e-5)
    ref = keras.layers.LayerNormalization(epsilon=1e-5)
    ref.build(x.shape)
    ours.build(x.shape)
    gamma = np.linspace(0.5, 1.5, 7, dtype="float32")
    beta = np.linspace(-1, 1, 7, dtype="float32")
    ref.set_weights([gamma, beta])
    ours.set_weights([gamma, beta])
    np.testing.assert_allclose(ours(x), ref(x), atol=1e-5)


def test_integer_layer_norm_form_is_the_same_maths():
    # the L2_NORMALIZATION form the full-int8 graphs are traced with
    x = np.random.default_rng(1).normal(3.0, 2.0, (2, 5, 7)).astype("float32")
    norm = EdgeLayerNormalization(epsilon=1e-5)
    norm.build(x.shape)
    gamma = np.linspace(0.5, 1.5, 7, dtype="float32")
    norm.set_weights([gamma, np.linspace(-1, 1, 7, dtype="float32")])
    plain = np.asarray(norm(x))
    with integer_layer_norm():
        l2_form = np.asarray(norm(x))
    np.testing.assert_allclose(l2_form, plain, rtol=1e-5, atol=5e-5)
    np.testing.assert_allclose(np.asarray(norm(x)), plain)  # flag restored


def test_integer_softmax_form_is_the_same_maths():
    # exp(x - max) * rsqrt(sum)^2, the full-int8 graphs' attention weights;
    # logits spread wide, so a missing max shift would overflow exp
    logits = np.random.default_rng(2).normal(0, 30, (2, 3, 5, 9))
    logits = logits.astype("float32")
    plain = np.asarray(softmax_float32(logits, "float32"))
    with integer_softmax():
        decomposed = np.asarray(softmax_float32(logits, "float32"))
    np.testing.assert_allclose(decomposed, plain, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        np.asarray(softmax_float32(logits, "float32")), plain
    )  # flag restored


def test_pyramid_contract():
    x = np.ones((2, 32, 48, 3), "float32")
    backbone, _ = run_backbone_test(TinyConvBackbone, {"channels": 4}, x)
    assert [i.as_dict() for i in backbone.feature_info] == [
        {"name": "P1", "channels": 4, "stride": 4},
        {"name": "P2", "channels": 8, "stride": 8},
    ]


def test_level_selection_errors_name_the_levels():
    backbone = TinyConvBackbone()
    assert backbone.select_features(out_indices=[-1]) == ["P2"]
    assert backbone.select_features([0], ["P1"]) == ["P1"]
    with pytest.raises(ValueError, match=r"levels 0..1"):
        backbone.select_features(out_indices=[2])
    with pytest.raises(ValueError, match=r"unknown level\(s\) \['P9'\]"):
        backbone.select_features(out_features=["P9"])
    with pytest.raises(ValueError, match="make them agree"):
        backbone.select_features(out_indices=[0], out_features=["P2"])


def test_saving(tmp_path):
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype("float32")
    run_model_saving_test(TinyConvBackbone, {"channels": 4}, x, tmp_path)


def test_edge_graph(tmp_path):
    model_file = run_edge_graph_test(TinyConvBackbone(), (32, 48), tmp_path)
    assert model_file.op_histogram["CONV_2D"] == 2


def test_unknown_preset_suggests_close_names():
    with pytest.raises(UnknownPresetError) as info:
        TinyConvBackbone.from_preset("mit_b00")
    assert "Unknown preset 'mit_b00'" in str(info.value)
    assert "Did you mean 'mit_b0'?" in str(info.value)
    # nothing close: no guess, the known names
    with pytest.raises(UnknownPresetError, match="Known presets") as info:
        TinyConvBackbone.from_preset("tiny_b0")
    assert "Did you mean" not in str(info.value)


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="has no config.json"):
        Backbone.from_preset(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        Backbone.from_preset(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(CheckpointError, match="'llama'"):
        Backbone.from_preset(str(tmp_path))


def test_the_integer_trace_form_is_local_to_its_context():
    import threading

    from edge_backbones.models.layers import TraceForm, trace_form

    seen = []
    with integer_layer_norm(), integer_softmax():
        assert trace_form() == TraceForm(True, True)
        # another thread tracing meanwhile keeps the plain form
        thread = threading.Thread(target=lambda: seen.append(trace_form()))
        thread.start()
        thread.join()
    assert seen == [TraceForm()]
    assert trace_form() == TraceForm()
