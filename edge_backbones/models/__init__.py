"""Keras 3 backbones; each family registers its presets on import."""

from edge_backbones.models.backbone import (
    Backbone,
    FeatureInfo,
    from_preset,
    list_presets,
)

__all__ = ["Backbone", "FeatureInfo", "from_preset", "list_presets"]
