"""int8_mixed keeps its scheme's named layers float (modes.toml's
`float_layer_names`): MiT's first patch embedding and every attention
output projection, while the other convolutions and dense layers are int8."""

import re

import pytest

from edge_backbones.core import modes
from edge_backbones.exporter.pipeline import export
from edge_backbones.models.backbone import Backbone
from tests.tflite_ops import operators
from tests.tiny import TINY_MIT_64

# the tensors the converter names after those layers
# (`serving_1/stage1_patch_embed_proj_1/convolution1`,
# `serving_1/stage2_block0_attention_1/proj_1/Tensordot`)
FLOAT_LAYER = re.compile(
    r"/(stage1_patch_embed_proj|stage\d_block\d_attention(_\d+)?/proj)(_\d+)?/"
)


@pytest.fixture(scope="module")
def mixed(photos, tmp_path_factory):
    backbone = Backbone.from_preset("mit_b0", load_weights=False, **TINY_MIT_64)
    (record,) = export(
        backbone,
        image_size="64x64",
        modes="int8_mixed",
        calibration=photos,
        out=tmp_path_factory.mktemp("mixed"),
    )
    return record


def test_scheme_names_the_float_layers():
    plan = modes.MODE_PLANS["int8_mixed"]
    assert plan.float_layer_names == (
        "stage1_patch_embed_proj", "stage*_attention/proj"
    )  # fmt: skip
    assert plan.as_metadata()["float_layer_names"] == list(
        plan.float_layer_names
    )


def test_named_layers_are_float_the_other_convs_and_fcs_int8(mixed):
    weighted = [
        op
        for op in operators(mixed.path)
        if op.name in ("CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D")
    ]
    kept = [op for op in weighted if FLOAT_LAYER.search(op.output)]
    # the first patch embedding + one projection per block (4 blocks)
    assert len(kept) == 1 + 4, [op.output for op in weighted]
    for op in kept:  # float in, float weights, float out
        assert op.output_type == "FLOAT32", op
        assert set(op.input_types[:2]) == {"FLOAT32"}, op
    others = [op for op in weighted if op not in kept]
    # 3 more patch embeddings; per block query, key, value, fc1, fc2 and
    # the depthwise conv; the key/value reductions of stages 1-2
    assert len(others) == 3 + 4 * 6 + 2
    assert {op.output_type for op in others} == {"INT8"}, others
    # the metadata names the nodes the scheme's layer names matched
    scheme = mixed.metadata["scheme"]
    assert scheme["float_layer_names"] == list(
        modes.MODE_PLANS["int8_mixed"].float_layer_names
    )
    names = scheme["float_layer_name_nodes"]
    assert {op.output for op in kept} <= set(names)
    assert all(FLOAT_LAYER.search(name) for name in names)
