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
from edge_backbones.errors import CalibrationError, InputError, require
from edge_backbones.runtime.preprocess import load_image, preprocess

__all__ = [
    "calibration_set",
    "holdout_arrays",
    "load_photos",
    "preprocessed",
    "representative_dataset",
]


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


def calibration_set(calibration, seed, holdout_fraction, max_images):
    """A `CalibrationSet` from a folder, a manifest or a set (as given);
    None without photos."""
    if calibration is None:
        return None
    if isinstance(calibration, CalibrationSet):
        return calibration
    return load_photos(
        calibration,
        seed=seed,
        holdout_fraction=holdout_fraction,
        max_images=max_images,
    )


def representative_dataset(arrays, preprocessing, log=None):
    """The converter's representative dataset: a generator of
    {"images": (1, H, W, 3)} float32 samples, logging progress to `log`."""
    samples = [a.astype(np.float32) for a in arrays]
    if preprocessing["pixels_in_graph"] and samples:
        # one sample that spans 0..255 pins the input range, so a uint8
        # input tensor gets scale 1 / zero point 0: raw pixels, exactly
        extra = samples[0].copy()
        extra[0, 0], extra[0, 1] = 0.0, 255.0
        samples.append(extra)

    def generator():
        for index, sample in enumerate(samples, 1):
            if log is not None and (index % 8 == 0 or index == len(samples)):
                log(f"calibrating: image {index}/{len(samples)}")
            yield {"images": sample[None]}

    return generator


def holdout_arrays(calib, preprocessing, size):
    """The float32 inputs every artifact is verified on: the held-out
    photos of `calib`, or without photos four smooth random images in the
    model's input space (float modes are still checked; the metadata
    records it)."""
    if calib is not None:
        images = preprocessed(calib, "holdout", preprocessing, size)
        if not images:
            raise CalibrationError(
                f"The held-out split of {getattr(calib, 'source', calib)!r}"
                " is empty, so nothing can verify the artifacts. Mark some "
                'photos "holdout" in its manifest.json (a manifest\'s split '
                "wins over holdout_fraction), or give a CalibrationSet "
                "holdout paths."
            )
        return [np.asarray(i, np.float32) for i in images]
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.uint8)
    cv2 = require("cv2", "export")
    return [
        np.asarray(
            preprocess(cv2.resize(s, size[::-1]), preprocessing, size),
            np.float32,
        )
        for s in small
    ]
