"""The preprocessing spec: what pixels a model expects, as data.

A model's preprocessing travels with it (presets, the artifact's metadata):
color_order, resize, interpolation, pixels_in_graph, scale, mean and std.
This module holds the constants and the one validation of that dict; the
image operations that apply it live in `edge_backbones.runtime.preprocess`.
Only the standard library is needed.
"""

import copy
from collections.abc import Mapping
from typing import Any, TypeAlias

from edge_backbones.errors import MetadataError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_PREPROCESSING",
    "IMAGENET_STD",
    "RESIZE_POLICIES",
    "INTERPOLATIONS",
    "validate_preprocessing",
]

# a preprocessing dict (color_order, resize, ..., mean, std)
Preprocessing: TypeAlias = dict[str, Any]

# ImageNet's per-channel mean and std on a 0-1 scale: the normalization of
# every preset here (MiT/SegFormer and SAM), read from their preset tables
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# 0-255 RGB stretched to the input, then ImageNet-normalized; families
# change what differs (SAM: `resize`)
IMAGENET_PREPROCESSING: Preprocessing = {
    "color_order": "RGB",
    "resize": "stretch",
    "interpolation": "linear",
    "pixels_in_graph": False,
    "scale": 1.0 / 255.0,
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
}
RESIZE_POLICIES = ("stretch", "longest_side_pad")
INTERPOLATIONS = ("linear", "nearest", "area", "cubic")
_COLOR_ORDERS = ("RGB", "BGR")


_DEFAULTS: Preprocessing = {
    "color_order": "RGB",
    "resize": "stretch",
    "interpolation": "linear",
    "pixels_in_graph": False,
    "scale": 1.0 / 255.0,
    "mean": [0.0, 0.0, 0.0],
    "std": [1.0, 1.0, 1.0],
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "color_order": _COLOR_ORDERS,
    "resize": RESIZE_POLICIES,
    "interpolation": INTERPOLATIONS,
}


def validate_preprocessing(preprocessing: Mapping[str, Any]) -> Preprocessing:
    """Checks a preprocessing dict; returns it with defaults filled in.

    Raises:
        MetadataError: not a dict, an unknown key, or a value out of range.
    """
    if not isinstance(preprocessing, dict):
        raise MetadataError(
            "A preprocessing spec must be a dict (color_order, resize, "
            "interpolation, pixels_in_graph, scale, mean, std); got "
            f"{type(preprocessing).__name__}."
        )
    # a misspelt key would silently leave its default in force
    unknown = sorted(set(preprocessing) - set(_DEFAULTS))
    if unknown:
        raise MetadataError(
            f"Unknown preprocessing key(s) {unknown}; the keys are "
            f"{list(_DEFAULTS)}. Check the spelling."
        )
    # fresh lists: a caller may edit the spec it gets back
    spec = {**copy.deepcopy(_DEFAULTS), **preprocessing}
    if not isinstance(spec["pixels_in_graph"], bool):
        raise MetadataError(
            "Preprocessing pixels_in_graph must be true or false; got "
            f"{spec['pixels_in_graph']!r}."
        )
    for key, allowed in _CHOICES.items():
        if spec[key] not in allowed:
            raise MetadataError(
                f"Preprocessing {key}={spec[key]!r} is not supported; use one "
                f"of {list(allowed)}."
            )
    _check_numbers(spec)
    return spec


def _check_numbers(spec: Preprocessing) -> None:
    """mean and std: 3 numbers each, no zero std; scale: positive."""
    for key in ("mean", "std"):
        values = spec[key]
        if (
            not isinstance(values, (list, tuple))
            or len(values) != 3
            or not all(isinstance(v, (int, float)) for v in values)
        ):
            raise MetadataError(
                f"Preprocessing {key} must be 3 numbers (one per channel); "
                f"got {values!r}."
            )
    if any(v == 0 for v in spec["std"]):
        raise MetadataError(
            f"Preprocessing std has a zero ({spec['std']}); every channel's "
            "std must be non-zero."
        )
    if not isinstance(spec["scale"], (int, float)) or spec["scale"] <= 0:
        raise MetadataError(
            f"Preprocessing scale must be a positive number; got "
            f"{spec['scale']!r} (1/255 maps 0-255 pixels onto 0-1)."
        )
