"""ViTDetBackbone: pyramid contract, saving, edge graph, presets."""

import numpy as np
import pytest

from edge_backbones.errors import UnknownPresetError, WeightsNotFoundError
from edge_backbones.models.backbone import Backbone
from edge_backbones.models.vit_det import ViTDetBackbone
from tests.models.backbone_harness import (
    run_backbone_test,
    run_edge_graph_test,
    run_model_saving_test,
)
from tests.tiny import TINY_VITDET


def _randomized(backbone, seed=0):
    # Position tables start at zero: random values make resizes observable.
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:
        variable.assign(
            rng.normal(scale=0.3, size=variable.shape).astype("float32")
        )
    return backbone


def test_keras_hub_docstring_example():
    model = ViTDetBackbone(
        image_shape=(16, 16, 3),
        patch_size=2,
        hidden_size=4,
        num_layers=2,
        global_attention_layer_indices=[2, 5, 8, 11],
        intermediate_dim=4 * 4,
        num_heads=2,
        num_output_channels=2,
        window_size=2,
    )
    output = model(np.ones((2, 224, 224, 3), dtype="float32"))
    assert tuple(output.shape) == (2, 112, 112, 2)
    assert model.feature_info[0].stride == 2


def test_pyramid_contract_non_square():
    x = np.random.default_rng(0).normal(size=(2, 48, 80, 3)).astype("float32")
    backbone, features = run_backbone_test(ViTDetBackbone, TINY_VITDET, x)
    assert [i.as_dict() for i in backbone.feature_info] == [
        {"name": "P3", "channels": 8, "stride": 8}
    ]
    assert features["P3"].shape == (2, 6, 10, 8)


def test_sam_feature_info_and_preprocessing():
    backbone = ViTDetBackbone.from_preset("sam_vit_base", load_weights=False)
    assert [i.as_dict() for i in backbone.feature_info] == [
        {"name": "P4", "channels": 256, "stride": 16}
    ]
    assert backbone.preprocessing == {
        "color_order": "RGB",
        "resize": "longest_side_pad",
        "interpolation": "linear",
        "pixels_in_graph": False,
        "scale": 1.0 / 255.0,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    # Published ViTDet-B (SAM image encoder incl. neck): 89.67 M.
    assert backbone.count_params() == 89_670_912
    assert backbone.count_params() == pytest.approx(89.67e6, rel=1e-3)


@pytest.mark.large
@pytest.mark.parametrize(
    "preset, published",
    [("sam_vit_large", 308.3e6), ("sam_vit_huge", 637.0e6)],
)
def test_large_preset_params(preset, published):
    backbone = ViTDetBackbone.from_preset(preset, load_weights=False)
    params = backbone.count_params()
    assert params == Backbone.presets[preset]["metadata"]["params"]
    assert params == pytest.approx(published, rel=1e-3)


def test_saving(tmp_path):
    x = np.random.default_rng(1).normal(size=(1, 40, 56, 3)).astype("float32")
    run_model_saving_test(ViTDetBackbone, TINY_VITDET, x, tmp_path)


def test_edge_graph_non_square(tmp_path):
    backbone = _randomized(ViTDetBackbone(**TINY_VITDET))
    # 40x56 -> 5x7 tokens: abs and global relative tables are resized and
    # the windowed blocks pad 5x7 to 6x9.
    model_file = run_edge_graph_test(backbone, (40, 56), tmp_path)
    histogram = model_file.op_histogram
    resizes = [op for op in histogram if "RESIZE" in op]
    assert not resizes, histogram
    assert histogram["GELU"] == TINY_VITDET["num_layers"], histogram
    assert histogram["SOFTMAX"] == TINY_VITDET["num_layers"], histogram


@pytest.mark.large
def test_sam_vit_base_edge_graph_full_size(tmp_path):
    backbone = ViTDetBackbone.from_preset("sam_vit_base", load_weights=False)
    rng = np.random.default_rng(0)
    for variable in backbone.weights:  # zero tables would fold away
        variable.assign(
            rng.normal(scale=0.02, size=variable.shape).astype("float32")
        )
    model_file = run_edge_graph_test(backbone, (1024, 1024), tmp_path)
    histogram = model_file.op_histogram
    assert not [op for op in histogram if "RESIZE" in op], histogram
    assert histogram["SOFTMAX"] == histogram["GELU"] == 12, histogram


def test_presets_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert {"sam_vit_base", "sam_vit_large", "sam_vit_huge"} <= set(
        ViTDetBackbone.presets
    )
    with pytest.raises(WeightsNotFoundError, match="sam-vit-base"):
        ViTDetBackbone.from_preset("sam_vit_base")
    with pytest.raises(UnknownPresetError, match="Did you mean 'sam_vit_base'"):
        ViTDetBackbone.from_preset("sam_vit_bas")
