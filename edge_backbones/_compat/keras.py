"""Keras' layer internals, the only place they are named.

Keras 3 has no public walk over a layer's nested layers (`_flatten_layers`
is what `Layer.quantize`, `summary` and saving use), and no public flag for
an input spec set by hand rather than built from the inputs
(`_manual_input_spec`).
"""

from collections.abc import Iterator
from typing import Any

from edge_backbones._compat._versions import unchecked

__all__ = [
    "CHECKED_ON",
    "flatten_layers",
    "has_manual_input_spec",
    "version_problem",
]

CHECKED_ON = ("3.15",)


def version_problem() -> str | None:
    """None, or why the installed Keras needs re-checking here."""
    return unchecked("keras", "keras", CHECKED_ON)


def flatten_layers(
    layer: Any, include_self: bool = True, recursive: bool = True
) -> Iterator[Any]:
    """The layers nested in `layer` (depth first), and itself if asked;
    none for an object that is not a Keras layer (a SavedModel)."""
    walk = getattr(layer, "_flatten_layers", None)
    if walk is None:
        return iter(())
    return walk(  # type: ignore[no-any-return]
        include_self=include_self, recursive=recursive
    )


def has_manual_input_spec(layer: Any) -> bool:
    """True if `layer.input_spec` was set by hand."""
    return hasattr(layer, "_manual_input_spec")
