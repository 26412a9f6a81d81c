"""Keras 3 backbones. Importing this package registers every family's presets."""

from edge_backbones.models.backbone import (
    Backbone,
    FeatureInfo,
    from_preset,
    list_presets,
)

__all__ = ["Backbone", "FeatureInfo", "from_preset", "list_presets"]
