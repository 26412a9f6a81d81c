"""Keras -> SavedModel -> TFLite export (needs the `export` extra).

`edge_backbones.export(...)` is `pipeline.export`. Because `export` is
also the name of this subpackage, importing any `edge_backbones.export.*`
module makes the package attribute this module instead of the function;
this module is therefore callable, forwarding to `pipeline.export`, so
`edge_backbones.export("mit_b0", ...)` works either way. Nothing heavy is
imported until a call.
"""

import importlib
import sys
import types

__all__ = ["export", "ArtifactRecord", "load_recipe"]

_LAZY = {
    "export": "edge_backbones.export.pipeline",
    "ArtifactRecord": "edge_backbones.export.pipeline",
    "load_recipe": "edge_backbones.export.recipes",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(
        f"module 'edge_backbones.export' has no attribute {name!r}"
    )


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from edge_backbones.export.pipeline import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
