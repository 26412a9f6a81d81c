"""The MiT (Mix Transformer) family: SegFormer's encoder, B0 to B5."""

from edge_backbones.models.backbone import (
    register_preset_aliases,
    register_presets,
)
from edge_backbones.models.mit.mit_aliases import (
    MiTB0Backbone,
    MiTB1Backbone,
    MiTB2Backbone,
    MiTB3Backbone,
    MiTB4Backbone,
    MiTB5Backbone,
)
from edge_backbones.models.mit.mit_backbone import MiTBackbone
from edge_backbones.models.mit.mit_layers import MiTAttention
from edge_backbones.models.mit.mit_presets import (
    backbone_presets,
    preset_aliases,
)

__all__ = [
    "MiTAttention",
    "MiTBackbone",
    "MiTB0Backbone",
    "MiTB1Backbone",
    "MiTB2Backbone",
    "MiTB3Backbone",
    "MiTB4Backbone",
    "MiTB5Backbone",
]

register_presets(MiTBackbone, backbone_presets)
register_preset_aliases(preset_aliases)
