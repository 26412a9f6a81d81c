"""edge_backbones: vision-transformer backbones from Keras 3 to int8 TFLite.

Importing the package is cheap and TensorFlow-free: the model classes and the
exporter are resolved on first use, so `edge_backbones.runtime` works on a
device that has only numpy and a TFLite interpreter.
"""

import importlib

__version__ = "0.1.0"

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
    "export": "edge_backbones.exporter.pipeline",
    "EdgeModel": "edge_backbones.runtime",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge_backbones' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
