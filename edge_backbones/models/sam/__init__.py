"""Segment Anything: `SAMBackbone` (ViTDet image encoder, prompt encoder,
mask decoder) and `SAMImageSegmenter`."""

from edge_backbones.models.sam.sam_backbone import SAMBackbone
from edge_backbones.models.sam.sam_image_segmenter import SAMImageSegmenter
from edge_backbones.models.sam.sam_mask_decoder import SAMMaskDecoder
from edge_backbones.models.sam.sam_presets import sam_presets
from edge_backbones.models.sam.sam_prompt_encoder import SAMPromptEncoder

__all__ = [
    "SAMBackbone",
    "SAMImageSegmenter",
    "SAMMaskDecoder",
    "SAMPromptEncoder",
    "sam_presets",
]
