"""The preset names and calls the seed documentation (keras-cv 0.9's MiT,
keras-hub 0.17's ViTDet) shows work here as documented there."""

import keras
import numpy as np
import pytest

from edge_backbones import MiTBackbone, ViTDetBackbone
from edge_backbones.errors import UnknownPresetError, WeightsNotFoundError
from edge_backbones.models import Backbone

# name in the other library's docs -> the preset here with its weights
SEED_NAMES = {
    ("MiTBackbone", "mit_b0_imagenet"): "mit_b0",
    ("ViTDetBackbone", "vit_det"): "sam_vit_base",
}
CLASSES = {"MiTBackbone": MiTBackbone, "ViTDetBackbone": ViTDetBackbone}
# every MiT preset name the seed pages list, with the parameters (millions)
# their tables give: keras-cv 0.9 and keras-hub 0.17
_MILLIONS = {"b0": 3.32, "b1": 13.16, "b2": 24.20, "b3": 44.08, "b4": 60.85,
             "b5": 81.45}  # fmt: skip
SEED_MIT_PRESETS = {
    **{f"mit_{size}": m for size, m in _MILLIONS.items()},
    "mit_b0_imagenet": _MILLIONS["b0"],
    **{
        f"mit_{s}_ade20k_512": _MILLIONS[s]
        for s in ("b0", "b1", "b2", "b3", "b4")
    },
    "mit_b5_ade20k_640": _MILLIONS["b5"],
    **{f"mit_{size}_cityscapes_1024": m for size, m in _MILLIONS.items()},
}


@pytest.mark.parametrize("name", sorted(SEED_MIT_PRESETS))
def test_every_seed_mit_name_resolves_with_its_parameter_count(name):
    entry = MiTBackbone._registered(name)
    assert entry["class"] is MiTBackbone
    # the seed tables round to 0.01 M (13,151,424 reads 13.16M there)
    published = SEED_MIT_PRESETS[name] * 1e6
    params = entry["metadata"]["params"]
    assert abs(params - published) <= 1e-3 * published, (name, params)


@pytest.mark.parametrize("family, alias", sorted(SEED_NAMES))
def test_seed_name_is_an_alias_of_one_preset(family, alias):
    name = SEED_NAMES[family, alias]
    cls = CLASSES[family]
    assert cls.preset_aliases[alias] == name
    assert Backbone.preset_aliases[alias] == name
    # one model, one entry: the alias builds, it is not a second preset
    assert alias not in Backbone.presets
    assert cls._registered(alias) is cls._registered(name)
    assert Backbone.natural_input_size(alias) == Backbone.natural_input_size(
        name
    )


def test_keras_cv_mit_b0_imagenet_load_weights_false_is_mit_b0():
    # keras-cv: MiTBackbone.from_preset("mit_b0_imagenet", load_weights=False)
    built = MiTBackbone.from_preset(
        "mit_b0_imagenet", load_weights=False, image_shape=(64, 64, 3)
    )
    assert (
        built.count_params() == Backbone.presets["mit_b0"]["metadata"]["params"]
    )
    assert built.preprocessing == Backbone.presets["mit_b0"]["preprocessing"]


def test_mit_b0_imagenet_loads_mit_b0_weights(tmp_path, monkeypatch):
    # keras-cv: MiTBackbone.from_preset("mit_b0_imagenet") -> trained weights,
    # here looked up where mit_b0's are
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    source = MiTBackbone.from_preset("mit_b0", load_weights=False)
    source.save_to_preset(str(tmp_path / "mit_b0"))
    images = np.random.default_rng(0).random((1, 64, 64, 3), "float32")
    want = _levels(source, images)
    for load_weights in (True, None):  # None: keras-cv's default
        loaded = MiTBackbone.from_preset(
            "mit_b0_imagenet", load_weights=load_weights
        )
        got = _levels(loaded, images)
        assert list(got) == ["P1", "P2", "P3", "P4"]
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def _levels(backbone, images):
    model = keras.Model(backbone.inputs, backbone.pyramid_outputs)
    return {k: np.asarray(v) for k, v in model(images).items()}


def test_alias_without_weights_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_BACKBONES_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match="nvidia/mit-b0"):
        MiTBackbone.from_preset("mit_b0_imagenet")


def test_alias_of_another_family_is_refused():
    with pytest.raises(UnknownPresetError, match="ViTDetBackbone"):
        MiTBackbone.from_preset("vit_det", load_weights=False)
