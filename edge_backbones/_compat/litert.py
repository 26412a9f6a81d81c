"""LiteRT's interpreter internals, the only place they are named.

The DELEGATE nodes (and the tensors each one covers) exist only in the
interpreter's execution plan after allocation, and LiteRT's `Interpreter`
has no public node list: `_get_ops_details` is the one way to read it.
"""

from typing import Any

from edge_backbones._compat._versions import unchecked

__all__ = ["CHECKED_ON", "ops_details", "version_problem"]

CHECKED_ON = ("2.3",)


def version_problem() -> str | None:
    """None, or why the installed ai-edge-litert needs re-checking here."""
    return unchecked("litert", "ai-edge-litert", CHECKED_ON)


def ops_details(interpreter: Any) -> list[dict[str, Any]]:
    """The interpreter's nodes in execution order: op_name, inputs,
    outputs and index of each (after delegation, once allocated)."""
    return interpreter._get_ops_details()  # type: ignore[no-any-return]
