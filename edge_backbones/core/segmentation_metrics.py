"""Scores of class maps, in numpy only: what export, runtime and report
say about a segmenter.

- `mask_agreement`: the share of pixels two class maps give the same class
  (an artifact's masks against the float model's).
- `ConfusionMatrix`: accumulated over images, gives per-class IoU, mean IoU
  and pixel accuracy (as the `evaluate` library's `mean_iou`: classes that
  never occur in either map are left out of the mean). Against the float
  model's masks it is "mIoU vs float"; against labels, the true mIoU.
- `reduce_labels`: ADE20K's convention as transformers' image processors
  apply it (0 "other" becomes the ignore index, every id moves down one).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "IGNORE_INDEX",
    "ConfusionMatrix",
    "mask_agreement",
    "reduce_labels",
]

# the label value no score counts (ADE20K's and Cityscapes' convention)
IGNORE_INDEX = 255


def _same_shape(
    a: npt.ArrayLike, b: npt.ArrayLike, what: str
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    first, second = np.asarray(a), np.asarray(b)
    if first.shape != second.shape:
        raise ValueError(
            f"{what}: class maps of shapes {first.shape} and {second.shape}; "
            "compare maps of one size."
        )
    return first, second


def mask_agreement(classes: npt.ArrayLike, reference: npt.ArrayLike) -> float:
    """Share (0..1) of pixels where `classes` equals `reference`.

    Raises:
        ValueError: maps of different shapes, or empty ones.
    """
    ours, theirs = _same_shape(classes, reference, "mask_agreement")
    if ours.size == 0:
        raise ValueError("mask_agreement of empty class maps.")
    return float(np.mean(ours == theirs))


def reduce_labels(
    labels: npt.ArrayLike, ignore_index: int = IGNORE_INDEX
) -> npt.NDArray[np.int64]:
    """0 -> `ignore_index`, every other id -> id - 1 (transformers'
    `do_reduce_labels`); `ignore_index` itself stays ignored."""
    ids = np.asarray(labels).astype(np.int64)
    reduced = ids - 1
    reduced[(ids == 0) | (ids == ignore_index)] = ignore_index
    return reduced


class ConfusionMatrix:
    """Pixel counts by (true class, predicted class) over many images.

    `add(predicted, target)` skips target pixels equal to `ignore_index`;
    any other target id outside 0..num_classes-1 is a ValueError (a
    labels folder of another dataset, or without `reduce_labels`).
    """

    def __init__(
        self, num_classes: int, ignore_index: int = IGNORE_INDEX
    ) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.counts = np.zeros((self.num_classes,) * 2, dtype=np.int64)

    def add(
        self, predicted: npt.ArrayLike, target: npt.ArrayLike
    ) -> "ConfusionMatrix":
        """Counts one image's pixels (target `ignore_index` skipped).

        Raises:
            ValueError: maps of different shapes, or a class id out of
                range.
        """
        given, truth = _same_shape(predicted, target, "ConfusionMatrix")
        target_ids = truth.astype(np.int64).ravel()
        predicted_ids = given.astype(np.int64).ravel()
        kept = target_ids != self.ignore_index
        target_ids, predicted_ids = target_ids[kept], predicted_ids[kept]
        for name, ids in (("target", target_ids), ("predicted", predicted_ids)):
            bad = (ids < 0) | (ids >= self.num_classes)
            if bad.any():
                raise ValueError(
                    f"{name} class ids {sorted(set(ids[bad].tolist()))[:8]} "
                    f"are outside 0..{self.num_classes - 1} (and not the "
                    f"ignore index {self.ignore_index})."
                )
        flat = target_ids * self.num_classes + predicted_ids
        self.counts += np.bincount(flat, minlength=self.num_classes**2).reshape(
            self.counts.shape
        )
        return self

    def per_class_iou(self) -> npt.NDArray[np.float64]:
        """IoU per class; NaN for a class in neither map."""
        hits = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - hits
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, hits / union, np.nan)

    def mean_iou(self) -> float:
        """Mean IoU over the classes present in either map (NaN if none)."""
        iou = self.per_class_iou()
        present = ~np.isnan(iou)
        return float(iou[present].mean()) if present.any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Share of counted pixels whose class is right."""
        total = self.counts.sum()
        if total == 0:
            return float("nan")
        return float(np.trace(self.counts) / total)

    def summary(self) -> dict[str, float | int]:
        """{"mean_iou", "pixel_accuracy", "pixels"}: JSON-ready floats."""
        return {
            "mean_iou": self.mean_iou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "pixels": int(self.counts.sum()),
        }
