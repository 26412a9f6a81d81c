"""Hugging Face SegFormer checkpoints -> MiTBackbone, offline.

A checkpoint folder holds `config.json` and `model.safetensors` (or a
sharded `model.safetensors.index.json`) of a `SegformerModel`, or of a
`SegformerForSemanticSegmentation` / `SegformerForImageClassification`, whose
encoder keys start with `segformer.` and whose head keys are ignored.
Tensors are read with `safetensors.numpy`, never with pickle.
"""

import json
import os

import numpy as np

from edge_backbones.errors import CheckpointError, require

__all__ = ["convert_config", "load_weights"]

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
# Prefix of the encoder inside the task models, and their heads' prefixes.
ENCODER_PREFIX = "segformer."
HEAD_PREFIXES = ("decode_head.", "classifier.")
_MAX_LISTED = 12


def convert_config(hf_config, path="<config>"):
    """MiTBackbone arguments from a SegFormer `config.json` dict."""
    act = hf_config.get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(
            f"{path!r} uses hidden_act={act!r}; MiTBackbone implements "
            "SegFormer's exact 'gelu' only."
        )
    channels = hf_config.get("num_channels", 3)
    if channels != 3:
        raise CheckpointError(
            f"{path!r} takes num_channels={channels}; MiTBackbone loads RGB "
            "(3-channel) checkpoints only."
        )
    keys = {
        "depths": "depths",
        "num_layers": "num_encoder_blocks",
        "blockwise_num_heads": "num_attention_heads",
        "blockwise_sr_ratios": "sr_ratios",
        "max_drop_path_rate": "drop_path_rate",
        "patch_sizes": "patch_sizes",
        "strides": "strides",
        "hidden_dims": "hidden_sizes",
        "mlp_ratios": "mlp_ratios",
    }
    missing = [hf for hf in keys.values() if hf not in hf_config]
    if missing:
        raise CheckpointError(
            f"{path!r}: config.json lacks {missing}; is it a SegFormer "
            "config (model_type 'segformer')?"
        )
    config = {ours: hf_config[hf] for ours, hf in keys.items()}
    for ours, value in config.items():
        if isinstance(value, list | tuple):
            config[ours] = [int(v) for v in value]
    return config


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


def read_tensors(folder):
    """All tensors of the checkpoint in `folder`, by name, as numpy."""
    single = os.path.join(folder, SAFETENSORS_FILE)
    if os.path.isfile(single):
        return _read_file(single)
    index = os.path.join(folder, SAFETENSORS_INDEX_FILE)
    if os.path.isfile(index):
        try:
            with open(index) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{index!r} is not a safetensors index with a "
                f"'weight_map' ({exc})."
            ) from exc
        tensors = {}
        for shard in shards:
            tensors.update(_read_file(os.path.join(folder, shard)))
        return tensors
    present = sorted(os.listdir(folder))
    raise CheckpointError(
        f"{folder!r} has no {SAFETENSORS_FILE} (files: {present}). Only "
        "safetensors checkpoints are read (pickled .bin files are not). "
        "Convert with `model.save_pretrained(folder, "
        "safe_serialization=True)`."
    )


def _conv_kernel(w):
    # PyTorch (out, in, kh, kw) -> Keras (kh, kw, in, out).
    return np.transpose(w, (2, 3, 1, 0))


def _depthwise_kernel(w):
    # PyTorch (channels, 1, kh, kw) -> Keras (kh, kw, channels, 1).
    return np.transpose(w, (2, 3, 0, 1))


def _dense_kernel(w):
    # PyTorch Linear (out, in) -> Keras Dense (in, out).
    return np.transpose(w)


def _same(w):
    return w


def _weight_map(backbone):
    """Checkpoint key -> (Keras variable, layout conversion)."""
    mapping = {}

    def add(prefix, layer, kernel=_same):
        # Norms hold (gamma, beta), Dense/Conv hold (kernel, bias); both
        # are PyTorch's (weight, bias) in that order.
        weight, bias = layer.weights
        mapping[f"{prefix}.weight"] = (weight, kernel)
        mapping[f"{prefix}.bias"] = (bias, _same)

    for i in range(backbone.num_layers):
        stage = f"stage{i + 1}"
        embed = f"encoder.patch_embeddings.{i}"
        add(
            f"{embed}.proj",
            backbone.get_layer(f"{stage}_patch_embed_proj"),
            _conv_kernel,
        )
        add(
            f"{embed}.layer_norm",
            backbone.get_layer(f"{stage}_patch_embed_norm"),
        )
        for j in range(backbone.depths[i]):
            block = f"encoder.block.{i}.{j}"
            ours = f"{stage}_block{j}"
            attention = backbone.get_layer(f"{ours}_attention")
            add(f"{block}.layer_norm_1", backbone.get_layer(f"{ours}_norm1"))
            add(f"{block}.attention.self.query", attention.query, _dense_kernel)
            add(f"{block}.attention.self.key", attention.key, _dense_kernel)
            add(f"{block}.attention.self.value", attention.value, _dense_kernel)
            if attention.sr_ratio > 1:
                add(
                    f"{block}.attention.self.sr",
                    attention.reduction,
                    _conv_kernel,
                )
                add(
                    f"{block}.attention.self.layer_norm",
                    attention.reduction_norm,
                )
            add(
                f"{block}.attention.output.dense", attention.proj, _dense_kernel
            )
            add(f"{block}.layer_norm_2", backbone.get_layer(f"{ours}_norm2"))
            add(
                f"{block}.mlp.dense1",
                backbone.get_layer(f"{ours}_mlp_fc1"),
                _dense_kernel,
            )
            add(
                f"{block}.mlp.dwconv.dwconv",
                backbone.get_layer(f"{ours}_mlp_dwconv"),
                _depthwise_kernel,
            )
            add(
                f"{block}.mlp.dense2",
                backbone.get_layer(f"{ours}_mlp_fc2"),
                _dense_kernel,
            )
        add(f"encoder.layer_norm.{i}", backbone.get_layer(f"{stage}_norm"))
    return mapping


def _listing(keys):
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_LISTED])
    more = len(keys) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


def load_weights(backbone, folder):
    """Assigns the encoder weights of the checkpoint in `folder`.

    Every encoder tensor must map to exactly one variable of the same
    shape; otherwise a CheckpointError lists the missing, unexpected and
    mismatched keys, and no variable is changed.
    """
    tensors = read_tensors(folder)
    if any(key.startswith(ENCODER_PREFIX) for key in tensors):
        tensors = {
            key.removeprefix(ENCODER_PREFIX): value
            for key, value in tensors.items()
            if key.startswith(ENCODER_PREFIX)
            or not key.startswith(HEAD_PREFIXES)
        }
    else:
        tensors = {
            key: value
            for key, value in tensors.items()
            if not key.startswith(HEAD_PREFIXES)
        }
    mapping = _weight_map(backbone)
    missing = set(mapping) - set(tensors)
    unexpected = set(tensors) - set(mapping)
    converted = {}
    mismatched = []
    for key in set(mapping) & set(tensors):
        variable, convert = mapping[key]
        raw = np.asarray(tensors[key], dtype="float32")
        if raw.ndim != len(variable.shape):  # the layout swap needs it
            mismatched.append(
                f"{key}: checkpoint rank {raw.ndim} {tuple(raw.shape)}, "
                f"model rank {len(variable.shape)} {tuple(variable.shape)}"
            )
            continue
        value = convert(raw)
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(tensors[key].shape)} -> "
                f"{tuple(value.shape)}, model {tuple(variable.shape)}"
            )
        converted[key] = value
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listing(unexpected)}")
        if mismatched:
            problems.append(f"wrong shapes: {_listing(mismatched)}")
        raise CheckpointError(
            f"The checkpoint in {folder!r} does not fit this MiTBackbone "
            f"(config {backbone.get_config()}): " + "; ".join(problems) + ". "
            "Check that config.json belongs to these weights."
        )
    for key, value in converted.items():
        mapping[key][0].assign(value)
