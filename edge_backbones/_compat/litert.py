"""LiteRT's internals, the only place they are named.

The DELEGATE nodes (and the tensors each one covers) exist only in the
interpreter's execution plan after allocation, and LiteRT's `Interpreter`
has no public node list: `_get_ops_details` is the one way to read it.

LiteRT's compiler plugins find a vendor SDK by importing
`ai_edge_litert_sdk_<vendor>` and calling its `path_to_sdk_libs()`; where
the SDK's libraries come from another wheel, a module of that name stands
in for the compile (`sdk_module`).
"""

import contextlib
import sys
import types
from collections.abc import Iterator
from typing import Any

from edge_backbones._compat._versions import unchecked

__all__ = ["CHECKED_ON", "ops_details", "sdk_module", "version_problem"]

CHECKED_ON = ("2.3",)


def version_problem() -> str | None:
    """None, or why the installed ai-edge-litert needs re-checking here."""
    return unchecked("litert", "ai-edge-litert", CHECKED_ON)


def ops_details(interpreter: Any) -> list[dict[str, Any]]:
    """The interpreter's nodes in execution order: op_name, inputs,
    outputs and index of each (after delegation, once allocated)."""
    return interpreter._get_ops_details()


@contextlib.contextmanager
def sdk_module(vendor: str, sdk_libs: str) -> Iterator[None]:
    """`ai_edge_litert_sdk_<vendor>` answers `sdk_libs` inside this block.

    The module goes into `sys.modules` (no file, no `sys.path` change), so
    nothing outlives the compile; a module of that name already imported is
    put back afterwards.
    """
    name = f"ai_edge_litert_sdk_{vendor}"
    previous = sys.modules.get(name)
    stand_in = types.ModuleType(name)
    stand_in.__doc__ = "edge_backbones stand-in: SDK library folders."
    stand_in.path_to_sdk_libs = lambda *unused: sdk_libs  # type: ignore[attr-defined]
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
