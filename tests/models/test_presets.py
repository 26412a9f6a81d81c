"""Every preset of every family, driven by `Backbone.presets`.

- Each carries its preprocessing and input size, as timm's pretrained
  configs do: the natural input size and the preprocessing (resize,
  interpolation, scale, mean, std) travel with the preset, and the
  backbone a preset builds reports that same preprocessing (the runtime
  and export read it; there is no second copy to drift).
- Each builds; its architecture has the metadata's and the published
  parameter count, and its pyramid is its own `feature_info`. Building the
  full models takes from seconds to minutes (SAM ViT-H holds 637 M
  weights), so each preset is built with one block of each kind and its
  full count extrapolated: blocks of one kind hold the same weights
  (`test_extrapolation_is_exact` checks that against full builds of small
  configs).
"""

import importlib
import json
import math

import numpy as np
import pytest

from edge_backbones.core.preprocessing import validate_preprocessing
from edge_backbones.models import backbone as backbone_lib
from edge_backbones.models.backbone import Backbone, register_presets
from edge_backbones.models.mit import MiTBackbone
from edge_backbones.models.vit_det import ViTDetBackbone
from tests.tiny import TINY_MIT, TINY_VITDET

FAMILIES = {
    "mit": "edge_backbones.models.mit.mit_presets",
    "vit_det": "edge_backbones.models.vit_det.vit_det_presets",
}
# overrides that keep each family's smallest preset cheap to build
SMALL = {
    "MiTBackbone": {"image_shape": (64, 64, 3)},
    "ViTDetBackbone": {
        "image_shape": (64, 64, 3),
        "hidden_size": 16,
        "num_layers": 2,
        "intermediate_dim": 32,
        "num_heads": 2,
        "window_size": 2,
    },
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_families_name_their_tables_alike(family):
    module = importlib.import_module(FAMILIES[family])
    assert set(module.__all__) == {
        "PREPROCESSING",
        "backbone_presets",
        "preset_aliases",
    }
    # other libraries' names, each for one of the family's own presets
    assert set(module.preset_aliases.values()) <= set(module.backbone_presets)
    assert not set(module.preset_aliases) & set(module.backbone_presets)
    for name, preset in module.backbone_presets.items():
        assert sorted(preset) == ["config", "metadata", "preprocessing"]
        assert "path" not in preset["metadata"], name


@pytest.mark.parametrize("preset", sorted(Backbone.presets))
def test_preset_carries_size_and_preprocessing(preset):
    entry = Backbone.presets[preset]
    height, width = entry["metadata"]["image_size"]
    assert Backbone.natural_input_size(preset) == (height, width)
    spec = entry["preprocessing"]
    assert validate_preprocessing(dict(spec)) == spec  # complete as given
    assert spec["scale"] == pytest.approx(1 / 255)
    assert spec["mean"] == [0.485, 0.456, 0.406]
    assert spec["std"] == [0.229, 0.224, 0.225]


@pytest.mark.parametrize("family", ["MiTBackbone", "ViTDetBackbone"])
def test_backbone_reports_its_presets_preprocessing(family):
    presets = {
        name: entry
        for name, entry in Backbone.presets.items()
        if entry["class"].__name__ == family
    }
    name = min(presets, key=lambda n: presets[n]["metadata"]["params"])
    built = Backbone.from_preset(name, load_weights=False, **SMALL[family])
    assert built.preprocessing == presets[name]["preprocessing"]


def test_a_preset_without_size_or_preprocessing_is_refused(monkeypatch):
    entry = dict(Backbone.presets["mit_b0"])
    del entry["class"]
    monkeypatch.setattr(backbone_lib, "_PRESETS", {})
    monkeypatch.setattr(backbone_lib, "_FAMILIES", [])
    no_size = {**entry, "metadata": {"description": "x"}}
    with pytest.raises(ValueError, match="image_size"):
        register_presets(Backbone, {"no_size": no_size})
    no_spec = {k: v for k, v in entry.items() if k != "preprocessing"}
    with pytest.raises(ValueError, match="'preprocessing' dict"):
        register_presets(Backbone, {"no_spec": no_spec})


# The papers' (MiT: SegFormer / keras-cv; ViTDet: Segment Anything's image
# encoder with its neck) parameter counts, in millions.
PUBLISHED_MILLIONS = {
    "b0": 3.32, "b1": 13.16, "b2": 24.20, "b3": 44.08, "b4": 60.85,
    "b5": 81.45, "sam_vit_base": 89.67, "sam_vit_large": 308.3,
    "sam_vit_huge": 637.0,
}  # fmt: skip
PRESETS = sorted(Backbone.presets)
# whose Hugging Face checkpoints each family's presets name
HF_ORGS = {MiTBackbone: "nvidia", ViTDetBackbone: "facebook"}


def _published(name):
    key = name if name.startswith("sam_") else name.split("_")[1]
    return PUBLISHED_MILLIONS[key] * 1e6


def _block_params(backbone, prefix):
    """Weights of the layers named `<prefix>_...` (one block)."""
    layers = [
        layer
        for layer in backbone.layers
        if layer.name.startswith(prefix + "_")
    ]
    assert layers, prefix
    return sum(layer.count_params() for layer in layers)


def _mit_count(config, small):
    """`small` has one block per stage; each further one adds its stage's."""
    depths = config["depths"]
    return small.count_params() + sum(
        (depth - 1) * _block_params(small, f"stage{stage + 1}_block0")
        for stage, depth in enumerate(depths)
    )


def _vit_det_count(config, small):
    """A windowed and a global block built at the config's image size (the
    position tables depend on it; `small` is at 64x64); each further block
    adds its kind's."""
    del small
    n_global = len(config["global_attention_layer_indices"])
    n_windowed = config["num_layers"] - n_global
    small = ViTDetBackbone(
        **{**config, "num_layers": 2, "global_attention_layer_indices": [1]}
    )
    return (
        small.count_params()
        + (n_windowed - 1) * _block_params(small, "block0")
        + (n_global - 1) * _block_params(small, "block1")
    )


COUNTS = {MiTBackbone: _mit_count, ViTDetBackbone: _vit_det_count}


def _expected_feature_info(cls, config):
    """(name, channels, stride) per level, from the config alone."""
    if cls is MiTBackbone:
        strides = np.cumprod(config["strides"])
        return [
            (f"P{i + 1}", channels, int(stride))
            for i, (channels, stride) in enumerate(
                zip(config["hidden_dims"], strides, strict=True)
            )
        ]
    patch = config["patch_size"]
    level = f"P{int(math.log2(patch))}"
    return [(level, config["num_output_channels"], patch)]


def _small(cls, config):
    """The preset's architecture with one or two blocks, at 64x64."""
    if cls is MiTBackbone:
        return {**config, "depths": [1] * len(config["depths"])}
    return {
        **config,
        "num_layers": 1,
        "global_attention_layer_indices": [0],
        "image_shape": (64, 64, 3),
    }


def test_every_family_has_presets():
    families = {entry["class"] for entry in Backbone.presets.values()}
    assert families == {MiTBackbone, ViTDetBackbone}
    assert sorted(MiTBackbone.presets) == sorted(
        [f"mit_b{i}" for i in range(6)]
        + [f"mit_b{i}_ade20k_512" for i in range(5)]
        + ["mit_b5_ade20k_640"]
        + [f"mit_b{i}_cityscapes_1024" for i in range(6)]
    )
    assert sorted(ViTDetBackbone.presets) == [
        "sam_vit_base", "sam_vit_huge", "sam_vit_large",
    ]  # fmt: skip
    assert sorted(MiTBackbone.presets) + sorted(ViTDetBackbone.presets) == (
        sorted(PRESETS)
    )
    # the fine-tuned MiT presets share the six ImageNet architectures
    architectures = {
        json.dumps(entry["config"], sort_keys=True)
        for entry in MiTBackbone.presets.values()
    }
    assert len(architectures) == 6


@pytest.mark.parametrize("preset", PRESETS)
def test_preset(preset):
    entry = Backbone.presets[preset]
    cls, config, metadata = entry["class"], entry["config"], entry["metadata"]
    # the table's fields
    assert isinstance(metadata["description"], str) and metadata["description"]
    org, _, repo = metadata["hf_repo"].partition("/")
    assert org == HF_ORGS[cls] and repo, metadata["hf_repo"]
    if "image_size" in metadata:  # the natural export size
        height, width = metadata["image_size"]
        deepest = _expected_feature_info(cls, config)[-1][2]
        assert height % deepest == 0 and width % deepest == 0, metadata
    # it builds (one block of each kind)
    backbone = Backbone.from_preset(
        preset, load_weights=False, **_small(cls, config)
    )
    assert type(backbone) is cls
    # its architecture has the metadata's and the paper's parameter count
    params = COUNTS[cls](config, backbone)
    assert params == metadata["params"], (preset, params)
    published = _published(preset)
    assert abs(params - published) <= 1e-3 * published, (preset, params)
    # its pyramid is its own feature_info, which the config fixes
    info = [(i.name, i.channels, i.stride) for i in backbone.feature_info]
    assert info == _expected_feature_info(cls, config)
    images = np.random.default_rng(0).uniform(-2, 2, (1, 64, 64, 3))
    features = backbone.feature_extractor()(images.astype("float32"))
    assert list(features) == [name for name, _, _ in info]
    for name, channels, stride in info:
        side = 64 // stride
        assert tuple(features[name].shape) == (1, side, side, channels)


@pytest.mark.parametrize(
    "cls, config",
    [
        (MiTBackbone, {**TINY_MIT, "depths": [2, 3, 1, 2]}),
        (ViTDetBackbone, TINY_VITDET),  # 2 windowed blocks, 1 global
    ],
    ids=["mit", "vit_det"],
)
def test_extrapolation_is_exact(cls, config):
    small = cls(**_small(cls, config))
    assert COUNTS[cls](config, small) == cls(**config).count_params()
