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

import numpy as np

__all__ = [
    "IGNORE_INDEX",
    "ConfusionMatrix",
    "mask_agreement",
    "reduce_labels",
]

# the label value no score counts (ADE20K's and Cityscapes' convention)
IGNORE_INDEX = 255


def _same_shape(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(
            f"{what}: class maps of shapes {a.shape} and {b.shape}; "
            "compare maps of one size."
        )
    return a, b


def mask_agreement(classes, reference):
    """Share (0..1) of pixels where `classes` equals `reference`."""
    classes, reference = _same_shape(classes, reference, "mask_agreement")
    if classes.size == 0:
        raise ValueError("mask_agreement of empty class maps.")
    return float(np.mean(classes == reference))


def reduce_labels(labels, ignore_index=IGNORE_INDEX):
    """0 -> `ignore_index`, every other id -> id - 1 (transformers'
    `do_reduce_labels`); `ignore_index` itself stays ignored."""
    labels = np.asarray(labels).astype(np.int64)
    reduced = labels - 1
    reduced[(labels == 0) | (labels == ignore_index)] = ignore_index
    return reduced


class ConfusionMatrix:
    """Pixel counts by (true class, predicted class) over many images.

    `add(predicted, target)` skips target pixels equal to `ignore_index`;
    any other target id outside 0..num_classes-1 is a ValueError (a
    labels folder of another dataset, or without `reduce_labels`).
    """

    def __init__(self, num_classes, ignore_index=IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.counts = np.zeros((self.num_classes,) * 2, dtype=np.int64)

    def add(self, predicted, target):
        predicted, target = _same_shape(predicted, target, "ConfusionMatrix")
        target = target.astype(np.int64).ravel()
        predicted = predicted.astype(np.int64).ravel()
        kept = target != self.ignore_index
        target, predicted = target[kept], predicted[kept]
        for name, ids in (("target", target), ("predicted", predicted)):
            bad = (ids < 0) | (ids >= self.num_classes)
            if bad.any():
                raise ValueError(
                    f"{name} class ids {sorted(set(ids[bad].tolist()))[:8]} "
                    f"are outside 0..{self.num_classes - 1} (and not the "
                    f"ignore index {self.ignore_index})."
                )
        flat = target * self.num_classes + predicted
        self.counts += np.bincount(flat, minlength=self.num_classes**2).reshape(
            self.counts.shape
        )
        return self

    def per_class_iou(self):
        """IoU per class; NaN for a class in neither map."""
        hits = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(0) + self.counts.sum(1) - hits
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, hits / union, np.nan)

    def mean_iou(self):
        """Mean IoU over the classes present in either map (NaN if none)."""
        iou = self.per_class_iou()
        present = ~np.isnan(iou)
        return float(iou[present].mean()) if present.any() else float("nan")

    def pixel_accuracy(self):
        """Share of counted pixels whose class is right."""
        total = self.counts.sum()
        if total == 0:
            return float("nan")
        return float(np.trace(self.counts) / total)

    def summary(self):
        """{"mean_iou", "pixel_accuracy", "pixels"}: JSON-ready floats."""
        return {
            "mean_iou": self.mean_iou(),
            "pixel_accuracy": self.pixel_accuracy(),
            "pixels": int(self.counts.sum()),
        }
