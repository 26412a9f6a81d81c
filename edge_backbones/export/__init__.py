"""Keras -> SavedModel -> TFLite export (needs the `export` extra).

`edge_backbones.export(...)` is `pipeline.export`, and `export` is also
the name of this subpackage. Python's import system binds every imported
submodule to its parent package (`import edge_backbones.export.modes`
sets `edge_backbones.export` to this module), so after any such import a
function of that name on `edge_backbones` is gone, whatever
`edge_backbones/__init__.py` defines. A call on a module is looked up on
its type, so the one way to keep `edge_backbones.export("mit_b0", ...)`
working without renaming the subpackage (which every `from
edge_backbones.export import ...` in users' code depends on) is to give
this module a callable type: the module `__class__` assignment the Python
reference documents for this ("Customizing module attribute access").
`_ExportPackage` adds only `__call__`, forwarding to `pipeline.export`;
nothing heavy is imported until a call.
"""

import importlib
import sys
import types

__all__ = ["export", "export_job", "ArtifactRecord", "ExportJob", "load_recipe"]

_LAZY = {
    "export": "edge_backbones.export.pipeline",
    "export_job": "edge_backbones.export.pipeline",
    "ArtifactRecord": "edge_backbones.export.pipeline",
    "ExportJob": "edge_backbones.export.options",
    "load_recipe": "edge_backbones.export.recipes",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(
        f"module 'edge_backbones.export' has no attribute {name!r}"
    )


class _ExportPackage(types.ModuleType):
    """This package's type: calling it is calling `pipeline.export`."""

    def __call__(self, model, **options):
        from edge_backbones.export.pipeline import export

        return export(model, **options)


sys.modules[__name__].__class__ = _ExportPackage
