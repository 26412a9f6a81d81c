"""ViTDet (Segment Anything's image encoder). Importing registers presets."""

from edge_backbones.models.backbone import register_presets
from edge_backbones.models.vit_det.vit_det_backbone import ViTDetBackbone
from edge_backbones.models.vit_det.vit_det_presets import PRESETS

__all__ = ["ViTDetBackbone"]

register_presets(ViTDetBackbone, PRESETS)
