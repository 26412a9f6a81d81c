"""ViTDet (Segment Anything's image encoder). Importing registers presets."""

from edge_backbones.models.backbone import (
    register_preset_aliases,
    register_presets,
)
from edge_backbones.models.vit_det.vit_det_backbone import ViTDetBackbone
from edge_backbones.models.vit_det.vit_det_presets import (
    backbone_presets,
    preset_aliases,
)

__all__ = ["ViTDetBackbone"]

register_presets(ViTDetBackbone, backbone_presets)
register_preset_aliases(preset_aliases)
