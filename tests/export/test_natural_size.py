"""export() defaults to the preset's natural input size; a given size wins."""

import json

import pytest

from edge_backbones.exporter.pipeline import export
from edge_backbones.models import backbone as backbone_lib
from edge_backbones.models.backbone import DEFAULT_INPUT_SIZE, Backbone
from edge_backbones.models.mit import MiTBackbone
from edge_backbones.models.mit.mit_presets import PREPROCESSING
from edge_backbones.report.recipe import expected_stems
from tests.tiny import TINY_MIT_TWO_STAGES as TINY_MIT

TINY_PRESET = "tiny_mit_natural_size"


@pytest.fixture
def tiny_preset(monkeypatch):
    """A registered MiT preset trained (so to speak) at 40x24."""
    backbone_lib._ensure_registered()
    monkeypatch.setitem(
        backbone_lib._PRESETS,
        TINY_PRESET,
        {
            "class": MiTBackbone,
            "config": TINY_MIT,
            "metadata": {"description": "tiny", "image_size": [40, 24]},
            "preprocessing": dict(PREPROCESSING),
        },
    )
    return TINY_PRESET


@pytest.mark.parametrize(
    "preset, size",
    [
        ("mit_b0", (224, 224)),
        ("mit_b2_ade20k_512", (512, 512)),
        ("mit_b5_ade20k_640", (640, 640)),
        ("mit_b0_cityscapes_1024", (1024, 1024)),
        ("sam_vit_base", (1024, 1024)),
    ],
)
def test_natural_input_size_of_presets(preset, size):
    assert Backbone.natural_input_size(preset) == size


def test_anything_but_a_preset_gets_the_default(tmp_path, tiny_backbone):
    assert DEFAULT_INPUT_SIZE == (512, 512)
    assert Backbone.natural_input_size(str(tmp_path)) == DEFAULT_INPUT_SIZE
    assert Backbone.natural_input_size(tiny_backbone) == DEFAULT_INPUT_SIZE


def _input_shape(record):
    with open(record.path.removesuffix(".tflite") + ".json") as f:
        return json.load(f)["input"]["shape"]


def test_export_without_a_size_uses_the_presets(tiny_preset, tmp_path):
    kwargs = {"model": tiny_preset, "random_weights": True, "modes": "fp32"}
    (record,) = export(**kwargs, out=str(tmp_path))
    assert _input_shape(record) == [1, 40, 24, 3]
    assert record.path.endswith(f"{tiny_preset}_40x24_fp32.tflite")
    # the report's --resume names the same file
    assert expected_stems(dict(kwargs)) == [f"{tiny_preset}_40x24_fp32"]


def test_an_explicit_size_wins(tiny_preset, tmp_path):
    (record,) = export(
        tiny_preset,
        image_size="32x48",
        random_weights=True,
        modes="fp32",
        out=str(tmp_path),
    )
    assert _input_shape(record) == [1, 32, 48, 3]
