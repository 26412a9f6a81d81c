"""Calibration photos -> the arrays the TFLite converter calibrates on.

The photos and their split come from `edge_backbones.core.image_sets`;
every image goes through `edge_backbones.runtime.preprocess`, so the
converter calibrates on exactly the pixels the deployed runtime will feed.
Only numpy and OpenCV are needed here; TensorFlow is not imported.
"""

from edge_backbones.core.image_sets import load_calibration_set
from edge_backbones.errors import CalibrationError, InputError
from edge_backbones.runtime.preprocess import load_image, preprocess

__all__ = ["load_photos", "preprocessed"]


def load_photos(source, seed=0, holdout_fraction=0.25, max_images=None):
    """`core.image_sets.load_calibration_set`, every photo decoded once, so
    a broken photo fails now with its name, not halfway through a
    conversion."""
    return load_calibration_set(
        source,
        seed=seed,
        holdout_fraction=holdout_fraction,
        max_images=max_images,
        decode=load_image,
    )


def preprocessed(image_set, split, preprocessing, size):
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
    """
    return [
        _preprocess(path, preprocessing, size)
        for path in image_set.paths(split)
    ]


def _preprocess(path, preprocessing, size):
    try:
        return preprocess(path, preprocessing, size)
    except InputError as exc:
        raise CalibrationError(
            f"Calibration image {path!r} failed to load: {exc}"
        ) from exc
