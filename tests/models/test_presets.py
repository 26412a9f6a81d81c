"""Every preset of every family carries its preprocessing and input size.

As timm's pretrained configs do: the natural input size and the
preprocessing (resize, interpolation, scale, mean, std) travel with the
preset, and the backbone a preset builds reports that same preprocessing
(the runtime and export read it; there is no second copy to drift).
"""

import importlib

import pytest

from edge_backbones.models import backbone as backbone_lib
from edge_backbones.models.backbone import Backbone, register_presets
from edge_backbones.runtime.preprocess import validate_preprocessing

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
    assert set(module.__all__) == {"PREPROCESSING", "backbone_presets"}
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
