"""Hugging Face `SegformerForSemanticSegmentation` -> SegFormerImageSegmenter.

The encoder's keys (`segformer.encoder.*`) map as in
`mit/convert_segformer.py`; the decode head's (`decode_head.*`) map here:
`linear_c.{i}.proj` -> `linear_c{i+1}`, `linear_fuse` -> `linear_fuse`,
`batch_norm` -> `linear_fuse_bn` (its running statistics, eval mode),
`classifier` -> `classifier`. Tensors are read by `models.hf_checkpoint`,
never unpickled, and every tensor is checked before any is assigned.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

from edge_backbones.errors import CheckpointError, require
from edge_backbones.models import hf_checkpoint
from edge_backbones.models.hf_checkpoint import (
    Slot,
    conv_kernel,
    dense_kernel,
)
from edge_backbones.models.mit import convert_segformer

__all__ = [
    "DECODE_HEAD_PREFIX",
    "convert_head_config",
    "has_decode_head",
    "load_weights",
]

DECODE_HEAD_PREFIX = "decode_head."
# a counter of training steps, not a weight
_IGNORED_SUFFIX = ".num_batches_tracked"
SEGMENTATION_ARCHITECTURE = "SegformerForSemanticSegmentation"


def _class_names(hf_config, path):
    id2label = hf_config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise CheckpointError(
            f"{path!r} has no id2label mapping; a SegformerForSemantic"
            "Segmentation config.json names its classes there. Fix: set "
            "`config.id2label = {0: 'name', ...}` and save_pretrained again."
        )
    try:
        by_id = {int(key): str(name) for key, name in id2label.items()}
    except ValueError as exc:
        raise CheckpointError(
            f"{path!r}: id2label has a key that is not a class id ({exc}); "
            "its keys are 0 .. num_labels - 1."
        ) from exc
    if sorted(by_id) != list(range(len(by_id))):
        raise CheckpointError(
            f"{path!r}: id2label's ids {sorted(by_id)[:12]} are not 0 .. "
            f"{len(by_id) - 1}; give every class id from 0 up one name."
        )
    stated = hf_config.get("num_labels")
    if stated is not None and stated != len(by_id):
        raise CheckpointError(
            f"{path!r} says num_labels={stated} but id2label names "
            f"{len(by_id)} classes; make them agree (transformers derives "
            "num_labels from id2label: drop num_labels or fix id2label)."
        )
    return [by_id[i] for i in range(len(by_id))]


def convert_head_config(
    hf_config: Mapping[str, Any], path: str = "<config>"
) -> tuple[int, int, list[str] | None]:
    """(SegFormerBackbone's projection_filters, num_classes, class_names)."""
    names = _class_names(hf_config, path)
    return int(hf_config.get("decoder_hidden_size", 256)), len(names), names


def _tensor_names(folder):
    """The checkpoint's tensor names, read from the safetensors headers
    only (no tensor is loaded)."""
    safetensors = require("safetensors", "export")
    single = os.path.join(folder, hf_checkpoint.SAFETENSORS_FILE)
    files = [single] if os.path.isfile(single) else []
    index = os.path.join(folder, hf_checkpoint.SAFETENSORS_INDEX_FILE)
    if not files and os.path.isfile(index):
        with open(index) as f:
            return set(json.load(f).get("weight_map", {}))
    names = set()
    for file in files:
        with safetensors.safe_open(file, "numpy") as handle:
            names.update(handle.keys())
    return names


def has_decode_head(folder: str) -> bool:
    """Whether the Hugging Face checkpoint in `folder` holds SegFormer's
    decode head (a SegformerForSemanticSegmentation), by its config's
    `architectures` or, failing that, its tensor names. An unreadable
    config is no head: the checkpoint loader then says what is wrong."""
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or config.get("model_type") != "segformer":
        return False
    if SEGMENTATION_ARCHITECTURE in (config.get("architectures") or ()):
        return True
    try:
        names = _tensor_names(folder)
    except (OSError, ValueError):
        return False
    return any(name.startswith(DECODE_HEAD_PREFIX) for name in names)


def _pair(slots, key, layer, kernel=hf_checkpoint.same):
    weight, bias = layer.weights
    slots.append(Slot(weight, f"{key}.weight", kernel))
    slots.append(Slot(bias, f"{key}.bias"))


def head_slots(segmenter):
    """The `Slot`s of the decode head's weights, by key under
    `decode_head.` (the classifier included)."""
    backbone = segmenter.backbone
    slots = []
    levels = len(backbone.image_encoder.feature_info)
    for i in range(levels):
        layer = backbone.get_layer(f"linear_c{i + 1}")
        _pair(slots, f"linear_c.{i}.proj", layer, dense_kernel)
    (fuse,) = backbone.get_layer("linear_fuse").weights
    slots.append(Slot(fuse, "linear_fuse.weight", conv_kernel))
    norm = backbone.get_layer("linear_fuse_bn")
    for variable, key in zip(
        (norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance),
        ("weight", "bias", "running_mean", "running_var"),
        strict=True,
    ):
        slots.append(Slot(variable, f"batch_norm.{key}"))
    _pair(slots, "classifier", segmenter.classifier, conv_kernel)
    return slots


def load_weights(segmenter: Any, folder: str) -> None:
    """Assigns encoder and decode-head weights from the checkpoint in
    `folder`; a CheckpointError lists every missing, unexpected or
    mismatched tensor, and then no variable is changed."""
    tensors = hf_checkpoint.read_tensors(folder)
    head = {
        key.removeprefix(DECODE_HEAD_PREFIX): (key, value)
        for key, value in tensors.items()
        if key.startswith(DECODE_HEAD_PREFIX)
        and not key.endswith(_IGNORED_SUFFIX)
    }
    if not head:
        raise CheckpointError(
            f"The checkpoint in {folder!r} has no decode head (no "
            f"{DECODE_HEAD_PREFIX}* tensors): it is an encoder only. Load "
            "it with MiTBackbone.from_preset (export with --task backbone), "
            "or save the SegformerForSemanticSegmentation model."
        )
    encoder, prefix = hf_checkpoint.encoder_tensors(
        tensors, convert_segformer.ENCODER_PREFIX, (DECODE_HEAD_PREFIX,)
    )
    converted, problems = hf_checkpoint.fit_tensors(
        convert_segformer.weight_slots(segmenter.backbone.image_encoder),
        encoder,
        prefix,
    )
    head_converted, head_problems = hf_checkpoint.fit_tensors(
        head_slots(segmenter), head, DECODE_HEAD_PREFIX
    )
    problems += head_problems
    if problems:
        raise CheckpointError(
            f"The checkpoint in {folder!r} does not fit the "
            f"SegFormerImageSegmenter its config.json describes "
            f"(projection_filters={segmenter.backbone.projection_filters}, "
            f"num_classes={segmenter.num_classes}): "
            + "; ".join(problems)
            + ". Check that config.json (decoder_hidden_size, hidden_sizes, "
            "id2label) belongs to these weights."
        )
    for variable, value in converted + head_converted:
        variable.assign(value)
