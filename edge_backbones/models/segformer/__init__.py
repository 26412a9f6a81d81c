"""SegFormer: the MiT encoder with its all-MLP decode head, a segmenter.

keras-hub's layout and names: `SegFormerBackbone(image_encoder,
projection_filters)` and `SegFormerImageSegmenter(backbone, num_classes)`,
presets `segformer_b0_ade20k_512` .. `segformer_b5_cityscapes_1024`
(`SegFormerImageSegmenter.presets`).
"""

from edge_backbones.models.segformer.segformer_backbone import (
    SegFormerBackbone,
)
from edge_backbones.models.segformer.segformer_image_segmenter import (
    CLASSES,
    LOGITS,
    SegFormerImageSegmenter,
)
from edge_backbones.models.segformer.segformer_presets import (
    segmenter_presets,
)

__all__ = [
    "CLASSES",
    "LOGITS",
    "SegFormerBackbone",
    "SegFormerImageSegmenter",
    "segmenter_presets",
]
