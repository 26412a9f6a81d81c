"""Keras -> SavedModel -> TFLite export (needs the `export` extra).

The function users call is `edge_backbones.export(...)` (`pipeline.export`);
this subpackage holds its steps. Names resolve on first use so that importing
the package stays cheap.
"""

import importlib

__all__ = ["export", "export_job", "ArtifactRecord", "ExportJob", "load_recipe"]

_LAZY = {
    "export": "edge_backbones.exporter.pipeline",
    "export_job": "edge_backbones.exporter.pipeline",
    "ArtifactRecord": "edge_backbones.exporter.pipeline",
    "ExportJob": "edge_backbones.exporter.options",
    "load_recipe": "edge_backbones.exporter.recipes",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(
        f"module 'edge_backbones.exporter' has no attribute {name!r}"
    )
