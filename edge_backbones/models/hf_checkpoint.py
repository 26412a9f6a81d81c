"""Reading Hugging Face safetensors checkpoints into a backbone, offline.

Shared by every family's converter (`mit/convert_segformer.py`,
`vit_det/convert_sam.py`): one reader (a single `model.safetensors` or the
shards of `model.safetensors.index.json`, read with `safetensors.numpy`,
never unpickled), one error type (`CheckpointError`; its subclass
`WeightsNotFoundError` when the folder holds no weights file), the PyTorch ->
Keras kernel layouts, and one check that every tensor fits its variable
before any is assigned. A family only says which checkpoint key feeds which
variable (`Slot`).
"""

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_backbones.errors import CheckpointError, WeightsNotFoundError, require

__all__ = [
    "SAFETENSORS_FILE",
    "SAFETENSORS_INDEX_FILE",
    "Slot",
    "conv_kernel",
    "dense_kernel",
    "depthwise_kernel",
    "encoder_tensors",
    "fit_tensors",
    "listing",
    "read_tensors",
    "same",
]

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
_MAX_LISTED = 12
# problem headers without counts (MiT's wording) and with them (ViTDet's)
_HEADERS = {
    "missing": "missing keys",
    "unexpected": "unexpected keys",
    "wrong shape": "wrong shapes",
}


def _read_file(path):
    safetensors_numpy = require("safetensors.numpy", "export")
    try:
        return safetensors_numpy.load_file(path)
    except Exception as exc:
        # safetensors raises its own SafetensorError, or OSError, for a
        # truncated or corrupt header or payload.
        raise CheckpointError(
            f"{path!r} is not a readable safetensors file ({exc}). "
            "Download it again, or convert the PyTorch checkpoint with "
            "`model.save_pretrained(folder, safe_serialization=True)`."
        ) from exc


def _shards(folder):
    index = os.path.join(folder, SAFETENSORS_INDEX_FILE)
    try:
        with open(index) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{index!r} is not a safetensors index with a 'weight_map' ({exc})."
        ) from exc


def read_tensors(folder: str) -> dict[str, npt.NDArray[Any]]:
    """All tensors of the checkpoint in `folder`, by name, as numpy.

    Raises:
        WeightsNotFoundError: no weights file in `folder`.
        CheckpointError: an unreadable or inconsistent weights file.
    """
    single = os.path.join(folder, SAFETENSORS_FILE)
    if os.path.isfile(single):
        return _read_file(single)
    if os.path.isfile(os.path.join(folder, SAFETENSORS_INDEX_FILE)):
        tensors = {}
        for shard in _shards(folder):
            tensors.update(_read_file(os.path.join(folder, shard)))
        return tensors
    present = sorted(os.listdir(folder))
    raise WeightsNotFoundError(
        f"{folder!r} has config.json but no {SAFETENSORS_FILE} (nor "
        f"{SAFETENSORS_INDEX_FILE}; files: {present}). Only safetensors "
        "checkpoints are read (pickled .bin files are not): save the model "
        "with `save_pretrained(folder, safe_serialization=True)`, or pass "
        "load_weights=False for random weights."
    )


def encoder_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    prefix: str,
    ignored: tuple[str, ...] = (),
) -> tuple[dict[str, tuple[str, npt.NDArray[Any]]], str]:
    """{model key: (checkpoint key, tensor)} of a task model's encoder.

    Task models nest the encoder under `prefix` (`segformer.`,
    `vision_encoder.`); a bare encoder has no prefix. Keys starting with
    one of `ignored` (heads, decoders) are dropped; any other key outside
    the prefix is kept under its own name, so it is reported as
    unexpected, whole.
    """
    prefixed = any(key.startswith(prefix) for key in tensors)
    encoder = {}
    for key, value in tensors.items():
        if prefixed and key.startswith(prefix):
            encoder[key.removeprefix(prefix)] = (key, value)
        elif not key.startswith(ignored):
            encoder.setdefault(key, (key, value))
    return encoder, (prefix if prefixed else "")


def conv_kernel(w: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # PyTorch Conv2d (out, in, kh, kw) -> Keras Conv2D (kh, kw, in, out).
    return np.transpose(w, (2, 3, 1, 0))


def depthwise_kernel(w: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # PyTorch (channels, 1, kh, kw) -> Keras DepthwiseConv2D (kh, kw, ch, 1).
    return np.transpose(w, (2, 3, 0, 1))


def dense_kernel(w: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # PyTorch Linear (out, in) -> Keras Dense (in, out).
    return np.transpose(w)


def same(w: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return w


@dataclasses.dataclass(frozen=True)
class Slot:
    """One variable and the checkpoint tensor that fills it.

    `convert` maps the checkpoint's layout to the variable's. Tables the
    checkpoint holds for another size (ViTDet's position tables) give
    `stored_shape`, the shape the checkpoint must hold; `convert` resizes.
    """

    variable: Any  # a Keras variable
    key: str
    convert: Callable[[npt.NDArray[Any]], npt.NDArray[Any]] = same
    stored_shape: tuple[int, ...] | None = None


def listing(items: Iterable[str]) -> str:
    """Sorted, comma-separated, at most 12 shown."""
    items = sorted(items)
    shown = ", ".join(items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def _converted(slot, name, raw, stored_note):
    """(value, None) or (None, why it does not fit)."""
    variable_shape = tuple(slot.variable.shape)
    if slot.stored_shape is not None and raw.shape != slot.stored_shape:
        return None, (
            f"{name}: checkpoint {raw.shape}, expected "
            f"{slot.stored_shape}{stored_note}"
        )
    if raw.ndim != len(variable_shape):  # the layout swap needs it
        return None, (
            f"{name}: checkpoint rank {raw.ndim} {raw.shape}, "
            f"model rank {len(variable_shape)} {variable_shape}"
        )
    value = slot.convert(raw)
    if tuple(value.shape) != variable_shape:
        return None, (
            f"{name}: checkpoint {raw.shape} -> {tuple(value.shape)}, "
            f"model {variable_shape}"
        )
    return value, None


def fit_tensors(
    slots: Sequence[Slot],
    encoder: Mapping[str, tuple[str, npt.NDArray[Any]]],
    prefix: str = "",
    counted: bool = False,
    stored_note: str = "",
) -> tuple[list[tuple[Any, npt.NDArray[Any]]], list[str]]:
    """([(variable, value)], problems) for `slots` filled from `encoder`.

    `encoder` comes from `encoder_tensors`. Every slot needs its key, every
    key a slot, every tensor its variable's shape after `convert`; the
    problems (missing, unexpected, wrong shape) are listed all at once, by
    the checkpoint's own key names, headed with counts if `counted`.
    Nothing is assigned here: the caller assigns only when all fit.
    """
    expected = {slot.key for slot in slots}
    missing = [prefix + key for key in expected - set(encoder)]
    unexpected = [encoder[key][0] for key in set(encoder) - expected]
    converted, mismatched = [], []
    for slot in slots:
        if slot.key not in encoder:
            continue
        name, tensor = encoder[slot.key]
        raw = np.asarray(tensor, dtype=np.float32)
        value, why = _converted(slot, name, raw, stored_note)
        if why is None:
            converted.append((slot.variable, value))
        else:
            mismatched.append(why)
    problems = []
    for what, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", mismatched),
    ):
        if items:
            header = f"{what} {len(items)}" if counted else _HEADERS[what]
            problems.append(f"{header}: {listing(items)}")
    return converted, problems
