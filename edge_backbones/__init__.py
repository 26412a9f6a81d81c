"""edge_backbones: vision-transformer backbones from Keras 3 to int8 TFLite.

Importing the package is cheap and TensorFlow-free: the model classes and the
exporter are resolved on first use, so `edge_backbones.runtime` works on a
device that has only numpy and a TFLite interpreter.
"""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    # what the lazy names below resolve to, for type checkers and editors
    # ("X as X": an explicit re-export)
    from edge_backbones.exporter.pipeline import export as export
    from edge_backbones.models.backbone import Backbone as Backbone
    from edge_backbones.models.backbone import FeatureInfo as FeatureInfo
    from edge_backbones.models.backbone import from_preset as from_preset
    from edge_backbones.models.backbone import list_presets as list_presets
    from edge_backbones.models.mit import MiTB0Backbone as MiTB0Backbone
    from edge_backbones.models.mit import MiTB1Backbone as MiTB1Backbone
    from edge_backbones.models.mit import MiTB2Backbone as MiTB2Backbone
    from edge_backbones.models.mit import MiTB3Backbone as MiTB3Backbone
    from edge_backbones.models.mit import MiTB4Backbone as MiTB4Backbone
    from edge_backbones.models.mit import MiTB5Backbone as MiTB5Backbone
    from edge_backbones.models.mit import MiTBackbone as MiTBackbone
    from edge_backbones.models.sam import SAMBackbone as SAMBackbone
    from edge_backbones.models.sam import SAMImageSegmenter as SAMImageSegmenter
    from edge_backbones.models.sam import SAMMaskDecoder as SAMMaskDecoder
    from edge_backbones.models.sam import SAMPromptEncoder as SAMPromptEncoder
    from edge_backbones.models.segformer import (
        SegFormerBackbone as SegFormerBackbone,
    )
    from edge_backbones.models.segformer import (
        SegFormerImageSegmenter as SegFormerImageSegmenter,
    )
    from edge_backbones.models.vit_det import ViTDetBackbone as ViTDetBackbone
    from edge_backbones.runtime import EdgeModel as EdgeModel

# public name -> module that defines it (imported on first access)
_LAZY = {
    "Backbone": "edge_backbones.models.backbone",
    "FeatureInfo": "edge_backbones.models.backbone",
    "list_presets": "edge_backbones.models.backbone",
    "from_preset": "edge_backbones.models.backbone",
    "MiTBackbone": "edge_backbones.models.mit",
    "MiTB0Backbone": "edge_backbones.models.mit",
    "MiTB1Backbone": "edge_backbones.models.mit",
    "MiTB2Backbone": "edge_backbones.models.mit",
    "MiTB3Backbone": "edge_backbones.models.mit",
    "MiTB4Backbone": "edge_backbones.models.mit",
    "MiTB5Backbone": "edge_backbones.models.mit",
    "ViTDetBackbone": "edge_backbones.models.vit_det",
    "SegFormerBackbone": "edge_backbones.models.segformer",
    "SegFormerImageSegmenter": "edge_backbones.models.segformer",
    "SAMBackbone": "edge_backbones.models.sam",
    "SAMImageSegmenter": "edge_backbones.models.sam",
    "SAMPromptEncoder": "edge_backbones.models.sam",
    "SAMMaskDecoder": "edge_backbones.models.sam",
    "export": "edge_backbones.exporter.pipeline",
    "EdgeModel": "edge_backbones.runtime",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge_backbones' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
