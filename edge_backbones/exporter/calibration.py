"""Calibration photos -> the arrays the TFLite converter calibrates on.

The photos and their split come from `edge_backbones.core.image_sets`;
every image goes through `edge_backbones.runtime.preprocess`, so the
converter calibrates on exactly the pixels the deployed runtime will feed.
Only numpy and OpenCV are needed here; TensorFlow is not imported.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_backbones.core.image_sets import CalibrationSet, load_calibration_set
from edge_backbones.errors import CalibrationError, InputError
from edge_backbones.runtime.preprocess import load_image, preprocess

__all__ = ["load_photos", "preprocessed"]


def load_photos(
    source: str | os.PathLike[str],
    seed: int = 0,
    holdout_fraction: float = 0.25,
    max_images: int | None = None,
) -> CalibrationSet:
    """`core.image_sets.load_calibration_set`, every photo decoded once, so
    a broken photo fails now with its name, not halfway through a
    conversion.

    Raises:
        CalibrationError: no usable photos, or one that cannot be decoded.
    """
    return load_calibration_set(
        source,
        seed=seed,
        holdout_fraction=holdout_fraction,
        max_images=max_images,
        decode=load_image,
    )


def preprocessed(
    image_set: CalibrationSet,
    split: str,
    preprocessing: Mapping[str, Any],
    size: Sequence[int],
) -> list[npt.NDArray[np.float32] | npt.NDArray[np.uint8]]:
    """The model-input arrays (H, W, 3) of one split, in file order.

    Args:
        image_set: a `CalibrationSet`.
        split: "calibration" or "holdout".
        preprocessing: the metadata preprocessing dict (see
            `runtime.preprocess.preprocess`).
        size: (height, width) of the model input.

    Returns:
        A list of float32 arrays, or uint8 ones when the preprocessing
        has `pixels_in_graph` (the model normalizes in its graph).

    Raises:
        CalibrationError: an image that fails to load.
    """
    return [
        _preprocess(path, preprocessing, size)
        for path in image_set.paths(split)
    ]


def _preprocess(
    path: str, preprocessing: Mapping[str, Any], size: Sequence[int]
) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
    try:
        return preprocess(path, preprocessing, size)
    except InputError as exc:
        raise CalibrationError(
            f"Calibration image {path!r} failed to load: {exc}"
        ) from exc
