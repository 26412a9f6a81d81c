"""Reads Hugging Face Segment Anything checkpoints into `ViTDetBackbone`.

A folder written by `SamModel.save_pretrained` or
`SamVisionModel.save_pretrained`: `config.json` (model_type "sam" with a
`vision_config`, or "sam_vision_model") and `model.safetensors` (or shards
listed in `model.safetensors.index.json`). Only the `vision_encoder.`
tensors are read here; `models.sam.convert_sam_decoder` reads the prompt
encoder and mask decoder of a whole `SamModel` into `SAMBackbone`. Tensors
are read by `models.hf_checkpoint`, never unpickled.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edge_backbones.errors import CheckpointError
from edge_backbones.models import hf_checkpoint
from edge_backbones.models.hf_checkpoint import Slot, conv_kernel, dense_kernel
from edge_backbones.models.vit_det.vit_det_layers import (
    bicubic_resize_matrix,
    linear_resize_matrix,
)

__all__ = ["convert_config", "load_weights", "read_safetensors"]

VISION_PREFIX = "vision_encoder."
# the other parts of a SamModel checkpoint
OTHER_PARTS = ("prompt_encoder.", "mask_decoder.", "shared_image_embedding.")

# kept for callers of the SAM-only name: the one shared reader
read_safetensors = hf_checkpoint.read_tensors

# SamVisionConfig's defaults, for keys an older config.json leaves out.
_HF_VISION_DEFAULTS = {
    "hidden_size": 768,
    "output_channels": 256,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 1024,
    "patch_size": 16,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "mlp_ratio": 4.0,
    "use_abs_pos": True,
    "use_rel_pos": True,
    "window_size": 14,
    "global_attn_indexes": [2, 5, 8, 11],
    "mlp_dim": None,
}


def _square(value, name, path):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise CheckpointError(
        f"{path!r}: vision config {name}={value!r} is neither an int nor a "
        "(height, width) pair."
    )


def convert_config(
    hf_config: Mapping[str, Any], path: str = "<config>"
) -> dict[str, Any]:
    """`ViTDetBackbone` arguments from a Hugging Face SAM config dict.

    Raises:
        CheckpointError: a config this ViTDetBackbone cannot reproduce.
    """
    if hf_config.get("model_type") == "sam":
        if "vision_config" not in hf_config:
            raise CheckpointError(
                f"{path!r}: a 'sam' config.json without 'vision_config'; "
                "re-save the model with transformers' save_pretrained."
            )
        vision = hf_config["vision_config"] or {}
    else:
        vision = hf_config
    vision = {**_HF_VISION_DEFAULTS, **vision}
    if vision["hidden_act"] != "gelu":
        raise CheckpointError(
            f"{path!r}: hidden_act={vision['hidden_act']!r}; ViTDetBackbone "
            "implements SAM's exact 'gelu' only."
        )
    height, width = _square(vision["image_size"], "image_size", path)
    patch_h, patch_w = _square(vision["patch_size"], "patch_size", path)
    if patch_h != patch_w:
        raise CheckpointError(
            f"{path!r}: patch_size={vision['patch_size']!r}; ViTDetBackbone "
            "needs square patches."
        )
    hidden_size = vision["hidden_size"]
    mlp_dim = vision["mlp_dim"] or int(hidden_size * vision["mlp_ratio"])
    return {
        "hidden_size": hidden_size,
        "num_layers": vision["num_hidden_layers"],
        "intermediate_dim": mlp_dim,
        "num_heads": vision["num_attention_heads"],
        "global_attention_layer_indices": list(vision["global_attn_indexes"]),
        "image_shape": (height, width, vision["num_channels"]),
        "patch_size": patch_h,
        "num_output_channels": vision["output_channels"],
        "use_bias": vision["qkv_bias"],
        "use_abs_pos": vision["use_abs_pos"],
        "use_rel_pos": vision["use_rel_pos"],
        "window_size": vision["window_size"],
        "layer_norm_epsilon": vision["layer_norm_eps"],
    }


def _fit_positions(grid):
    # (1, h0, w0, C) -> (1, h, w, C), bicubic like the layer's own resize.
    def fit(table):
        rows = bicubic_resize_matrix(table.shape[1], grid[0])
        columns = bicubic_resize_matrix(table.shape[2], grid[1])
        fitted = np.einsum("yh,bhwc,xw->byxc", rows, table, columns)
        return fitted.astype(np.float32)

    return fit


def _fit_relative(length):
    # (L0, C) -> (L, C), linear like SAM's get_rel_pos.
    def fit(table):
        resize = linear_resize_matrix(table.shape[0], length)
        return (resize @ table).astype(np.float32)

    return fit


def _norm_slots(norm, key):
    return [Slot(norm.gamma, f"{key}.weight"), Slot(norm.beta, f"{key}.bias")]


def _dense_slots(dense, key, use_bias=True):
    slots = [Slot(dense.kernel, f"{key}.weight", dense_kernel)]
    return slots + ([Slot(dense.bias, f"{key}.bias")] if use_bias else [])


def _relative_slots(backbone, i, attention, checkpoint_grid):
    """Relative-position tables; the global blocks' depend on the size."""
    head_dim = backbone.hidden_size // backbone.num_heads
    is_global = i in backbone.global_attention_layer_indices
    slots = []
    for axis, size in zip("hw", checkpoint_grid, strict=True):
        table = getattr(attention, f"rel_pos_{axis}")
        key = f"layers.{i}.attn.rel_pos_{axis}"
        if is_global:
            fit = _fit_relative(table.shape[0])
            slots.append(Slot(table, key, fit, (2 * size - 1, head_dim)))
        else:
            slots.append(Slot(table, key))
    return slots


def _block_slots(backbone, i, checkpoint_grid):
    layer = backbone.get_layer
    hf = f"layers.{i}."
    attention = layer(f"block{i}_attention")
    slots = _norm_slots(layer(f"block{i}_norm1"), f"{hf}layer_norm1")
    slots += _norm_slots(layer(f"block{i}_norm2"), f"{hf}layer_norm2")
    slots += _dense_slots(attention.qkv, f"{hf}attn.qkv", backbone.use_bias)
    slots += _dense_slots(attention.proj, f"{hf}attn.proj")
    if backbone.use_rel_pos:
        slots += _relative_slots(backbone, i, attention, checkpoint_grid)
    slots += _dense_slots(layer(f"block{i}_mlp_fc1"), f"{hf}mlp.lin1")
    slots += _dense_slots(layer(f"block{i}_mlp_fc2"), f"{hf}mlp.lin2")
    return slots


def _weight_map(backbone, checkpoint_grid):
    """The `Slot`s of every vision-encoder weight, by SamVisionModel key.

    The tables that depend on the image size (absolute positions, global
    relative positions) are held by the checkpoint for `checkpoint_grid`
    (their `stored_shape`) and resized to the backbone's grid when an
    `image_shape` override changed it.
    """
    layer = backbone.get_layer
    patch = backbone.patch_size
    grid = (backbone.image_shape[0] // patch, backbone.image_shape[1] // patch)
    embedding = layer("patch_embedding")
    slots = [
        Slot(embedding.kernel, "patch_embed.projection.weight", conv_kernel),
        Slot(embedding.bias, "patch_embed.projection.bias"),
    ]
    if backbone.use_abs_pos:
        slots.append(
            Slot(
                layer("position_embedding").pos_embed,
                "pos_embed",
                _fit_positions(grid),
                (1, *checkpoint_grid, backbone.hidden_size),
            )
        )
    for i in range(backbone.num_layers):
        slots += _block_slots(backbone, i, checkpoint_grid)
    for i in (1, 2):
        conv = layer(f"neck_conv{i}").kernel
        slots.append(Slot(conv, f"neck.conv{i}.weight", conv_kernel))
        slots += _norm_slots(layer(f"neck_norm{i}"), f"neck.layer_norm{i}")
    return slots


def load_weights(
    backbone: Any,
    path: str,
    checkpoint_image_shape: Sequence[int] | None = None,
) -> None:
    """Copies the vision-encoder tensors of checkpoint `path` into `backbone`.

    `checkpoint_image_shape` is the image size the checkpoint was trained at
    (its config's `image_size`; default: the backbone's). When the backbone
    was built for another size, the absolute and global relative position
    tables are resized to it here, as the layers would at call time.
    Raises CheckpointError listing every missing, unexpected and wrongly
    shaped tensor at once, before any variable is changed.
    """
    image_shape = checkpoint_image_shape or backbone.image_shape
    checkpoint_grid = (
        image_shape[0] // backbone.patch_size,
        image_shape[1] // backbone.patch_size,
    )
    # SamModel and SamVisionModel both nest the encoder as `vision_encoder`;
    # a bare encoder state dict has no prefix.
    encoder, prefix = hf_checkpoint.encoder_tensors(
        hf_checkpoint.read_tensors(path), VISION_PREFIX, OTHER_PARTS
    )
    converted, problems = hf_checkpoint.fit_tensors(
        _weight_map(backbone, checkpoint_grid),
        encoder,
        prefix,
        counted=True,
        stored_note=f" for image size {tuple(image_shape[:2])}",
    )
    if problems:
        raise CheckpointError(
            f"The checkpoint in {path!r} does not fit the ViTDetBackbone "
            "built from its config.json (plus overrides): "
            + "; ".join(problems)
            + ". Check that config.json belongs to model.safetensors and "
            "that no override changes a tensor shape (image_shape may; "
            "hidden_size, num_heads, window_size, ... may not)."
        )
    for variable, value in converted:
        variable.assign(value)
