"""Mask agreement, pure numpy: how close two sets of SAM masks are.

SAM binarizes logits at 0; two masks agree by intersection over union.
Two empty masks agree perfectly (IoU 1): both say "nothing here".
"""

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["mask_iou", "mask_iou_summary"]


def mask_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU of boolean masks `a` and `b` over their last two axes.

    (..., H, W) -> (...,) float64; 1.0 where both are empty.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    inter = np.logical_and(a, b).sum(axis=(-2, -1), dtype=np.float64)
    union = np.logical_or(a, b).sum(axis=(-2, -1), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def mask_iou_summary(ious: npt.ArrayLike) -> dict[str, Any]:
    """{"mean", "worst", "count"} of a sequence of IoUs."""
    ious = np.asarray(ious, np.float64).reshape(-1)
    if ious.size == 0:
        raise ValueError("no IoUs to summarize")
    return {
        "mean": float(ious.mean()),
        "worst": float(ious.min()),
        "count": int(ious.size),
    }
