"""Reads Hugging Face Segment Anything checkpoints into `ViTDetBackbone`.

A folder written by `SamModel.save_pretrained` or
`SamVisionModel.save_pretrained`: `config.json` (model_type "sam" with a
`vision_config`, or "sam_vision_model") and `model.safetensors` (or shards
listed in `model.safetensors.index.json`). Only the `vision_encoder.`
tensors are read; the prompt encoder and mask decoder are ignored. Tensors
are read with `safetensors.numpy`, never unpickled.
"""

import json
import os

import numpy as np

from edge_backbones.errors import (
    CheckpointError,
    WeightsNotFoundError,
    require,
)
from edge_backbones.models.vit_det.vit_det_layers import (
    bicubic_resize_matrix,
    linear_resize_matrix,
)

__all__ = ["convert_config", "load_weights", "read_safetensors"]

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
VISION_PREFIX = "vision_encoder."

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


def convert_config(hf_config, path="<config>"):
    """`ViTDetBackbone` arguments from a Hugging Face SAM config dict."""
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


def _safetensors_files(path):
    single = os.path.join(path, SAFETENSORS_FILE)
    if os.path.isfile(single):
        return [single]
    index = os.path.join(path, SAFETENSORS_INDEX_FILE)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{index!r} is not a readable safetensors index ({exc})."
            ) from exc
        return [
            os.path.join(path, name)
            for name in sorted(set(weight_map.values()))
        ]
    raise WeightsNotFoundError(
        f"{path!r} has config.json but no {SAFETENSORS_FILE} (nor "
        f"{SAFETENSORS_INDEX_FILE}). Save the model with "
        "save_pretrained(path, safe_serialization=True), or pass "
        "load_weights=False for random weights."
    )


def read_safetensors(path):
    """All tensors of the checkpoint folder `path`, as float32 numpy."""
    numpy_io = require("safetensors.numpy", "export")
    tensors = {}
    for file in _safetensors_files(path):
        try:
            loaded = numpy_io.load_file(file)
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(
                f"{file!r} is not a readable safetensors file ({exc}). "
                "Re-download or re-save the checkpoint."
            ) from exc
        tensors.update(loaded)
    return tensors


def _linear(weight):
    # torch Linear (out, in) -> Keras Dense (in, out)
    return weight.T


def _conv(weight):
    # torch Conv2d (out, in, kh, kw) -> Keras Conv2D (kh, kw, in, out)
    return weight.transpose(2, 3, 1, 0)


def _keep(weight):
    return weight


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


def _weight_map(backbone, checkpoint_grid):
    """(Keras variable, key without prefix, transform, checkpoint shape).

    The checkpoint shape is given for the tables that depend on the image
    size (absolute positions, global relative positions): the checkpoint
    holds them for `checkpoint_grid` and they are resized to the backbone's
    grid when an `image_shape` override changed it. Other tensors must have
    the variable's shape after their transform (checkpoint shape None).
    """
    layer = backbone.get_layer
    patch = backbone.patch_size
    grid = (backbone.image_shape[0] // patch, backbone.image_shape[1] // patch)
    head_dim = backbone.hidden_size // backbone.num_heads
    pairs = [
        (
            layer("patch_embedding").kernel,
            "patch_embed.projection.weight",
            _conv,
            None,
        ),
        (
            layer("patch_embedding").bias,
            "patch_embed.projection.bias",
            _keep,
            None,
        ),
    ]
    if backbone.use_abs_pos:
        pairs.append(
            (
                layer("position_embedding").pos_embed,
                "pos_embed",
                _fit_positions(grid),
                (1, *checkpoint_grid, backbone.hidden_size),
            )
        )
    for i in range(backbone.num_layers):
        hf = f"layers.{i}."
        attention = layer(f"block{i}_attention")
        for norm in ("norm1", "norm2"):
            ln = layer(f"block{i}_{norm}")
            pairs += [
                (ln.gamma, f"{hf}layer_{norm}.weight", _keep, None),
                (ln.beta, f"{hf}layer_{norm}.bias", _keep, None),
            ]
        pairs.append(
            (attention.qkv.kernel, f"{hf}attn.qkv.weight", _linear, None)
        )
        if backbone.use_bias:
            pairs.append(
                (attention.qkv.bias, f"{hf}attn.qkv.bias", _keep, None)
            )
        pairs += [
            (attention.proj.kernel, f"{hf}attn.proj.weight", _linear, None),
            (attention.proj.bias, f"{hf}attn.proj.bias", _keep, None),
        ]
        if backbone.use_rel_pos:
            tables = {"h": attention.rel_pos_h, "w": attention.rel_pos_w}
            sizes = dict(zip("hw", checkpoint_grid, strict=True))
            is_global = i in backbone.global_attention_layer_indices
            for axis, table in tables.items():
                pairs.append(
                    (
                        table,
                        f"{hf}attn.rel_pos_{axis}",
                        _fit_relative(table.shape[0]) if is_global else _keep,
                        (2 * sizes[axis] - 1, head_dim) if is_global else None,
                    )
                )
        for fc, hf_fc in (("fc1", "lin1"), ("fc2", "lin2")):
            dense = layer(f"block{i}_mlp_{fc}")
            pairs += [
                (dense.kernel, f"{hf}mlp.{hf_fc}.weight", _linear, None),
                (dense.bias, f"{hf}mlp.{hf_fc}.bias", _keep, None),
            ]
    for i in (1, 2):
        norm = layer(f"neck_norm{i}")
        pairs += [
            (
                layer(f"neck_conv{i}").kernel,
                f"neck.conv{i}.weight",
                _conv,
                None,
            ),
            (norm.gamma, f"neck.layer_norm{i}.weight", _keep, None),
            (norm.beta, f"neck.layer_norm{i}.bias", _keep, None),
        ]
    return pairs


def _listing(keys, limit=20):
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return shown + more


def load_weights(backbone, path, checkpoint_image_shape=None):
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
    tensors = read_safetensors(path)
    # SamModel and SamVisionModel both nest the encoder as `vision_encoder`;
    # a bare encoder state dict has no prefix.
    prefix = (
        VISION_PREFIX
        if any(key.startswith(VISION_PREFIX) for key in tensors)
        else ""
    )
    encoder = {
        key[len(prefix) :]: value
        for key, value in tensors.items()
        if key.startswith(prefix)
    }
    if not prefix:
        # A bare encoder file may still carry the other SAM parts.
        encoder = {
            key: value
            for key, value in encoder.items()
            if not key.startswith(
                ("prompt_encoder.", "mask_decoder.", "shared_image_embedding.")
            )
        }
    pairs = _weight_map(backbone, checkpoint_grid)
    expected = {key for _, key, _, _ in pairs}
    missing = expected - set(encoder)
    unexpected = set(encoder) - expected
    mismatched = []
    converted = []
    for variable, key, transform, checkpoint_shape in pairs:
        if key not in encoder:
            continue
        raw = np.asarray(encoder[key], dtype=np.float32)
        if checkpoint_shape is not None and raw.shape != checkpoint_shape:
            mismatched.append(
                f"{prefix}{key}: checkpoint {raw.shape}, expected "
                f"{checkpoint_shape} for image size {image_shape[:2]}"
            )
            continue
        if raw.ndim != len(variable.shape):  # the layout swap needs it
            mismatched.append(
                f"{prefix}{key}: checkpoint rank {raw.ndim} {raw.shape}, "
                f"model rank {len(variable.shape)} {tuple(variable.shape)}"
            )
            continue
        value = transform(raw)
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{prefix}{key}: checkpoint {raw.shape} -> "
                f"{tuple(value.shape)}, model {tuple(variable.shape)}"
            )
        converted.append((variable, value))
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(
                f"missing {len(missing)}: "
                + _listing(prefix + key for key in missing)
            )
        if unexpected:
            problems.append(
                f"unexpected {len(unexpected)}: "
                + _listing(prefix + key for key in unexpected)
            )
        if mismatched:
            problems.append(
                f"wrong shape {len(mismatched)}: " + "; ".join(mismatched)
            )
        raise CheckpointError(
            f"The checkpoint in {path!r} does not fit the ViTDetBackbone "
            "built from its config.json (plus overrides): "
            + " | ".join(problems)
            + ". Check that config.json belongs to model.safetensors and "
            "that no override changes a tensor shape (image_shape may; "
            "hidden_size, num_heads, window_size, ... may not)."
        )
    for variable, value in converted:
        variable.assign(value)
