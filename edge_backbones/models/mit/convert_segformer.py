"""Hugging Face SegFormer checkpoints -> MiTBackbone, offline.

A checkpoint folder holds `config.json` and `model.safetensors` (or a
sharded `model.safetensors.index.json`) of a `SegformerModel`, or of a
`SegformerForSemanticSegmentation` / `SegformerForImageClassification`, whose
encoder keys start with `segformer.` and whose head keys are ignored.
Tensors are read by `models.hf_checkpoint`, never with pickle.
"""

from edge_backbones.errors import CheckpointError
from edge_backbones.models import hf_checkpoint
from edge_backbones.models.hf_checkpoint import (
    Slot,
    conv_kernel,
    dense_kernel,
    depthwise_kernel,
)

__all__ = ["convert_config", "load_weights", "weight_slots"]

# Prefix of the encoder inside the task models, and their heads' prefixes.
ENCODER_PREFIX = "segformer."
HEAD_PREFIXES = ("decode_head.", "classifier.")


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


def _pair(slots, prefix, layer, kernel=hf_checkpoint.same):
    # Norms hold (gamma, beta), Dense/Conv hold (kernel, bias); both are
    # PyTorch's (weight, bias) in that order.
    weight, bias = layer.weights
    slots.append(Slot(weight, f"{prefix}.weight", kernel))
    slots.append(Slot(bias, f"{prefix}.bias"))


def _block_slots(slots, backbone, i, j):
    block = f"encoder.block.{i}.{j}"
    ours = f"stage{i + 1}_block{j}"
    attention = backbone.get_layer(f"{ours}_attention")
    query = f"{block}.attention.self"
    _pair(slots, f"{block}.layer_norm_1", backbone.get_layer(f"{ours}_norm1"))
    _pair(slots, f"{query}.query", attention.query, dense_kernel)
    _pair(slots, f"{query}.key", attention.key, dense_kernel)
    _pair(slots, f"{query}.value", attention.value, dense_kernel)
    if attention.sr_ratio > 1:
        _pair(slots, f"{query}.sr", attention.reduction, conv_kernel)
        _pair(slots, f"{query}.layer_norm", attention.reduction_norm)
    _pair(
        slots, f"{block}.attention.output.dense", attention.proj, dense_kernel
    )
    _pair(slots, f"{block}.layer_norm_2", backbone.get_layer(f"{ours}_norm2"))
    for theirs, layer, kernel in (
        ("dense1", "fc1", dense_kernel),
        ("dwconv.dwconv", "dwconv", depthwise_kernel),
        ("dense2", "fc2", dense_kernel),
    ):
        layer = backbone.get_layer(f"{ours}_mlp_{layer}")
        _pair(slots, f"{block}.mlp.{theirs}", layer, kernel)


def weight_slots(backbone):
    """The `Slot`s of every encoder weight, by SegformerModel key."""
    slots = []
    for i in range(backbone.num_layers):
        stage = f"stage{i + 1}"
        embed = f"encoder.patch_embeddings.{i}"
        _pair(
            slots,
            f"{embed}.proj",
            backbone.get_layer(f"{stage}_patch_embed_proj"),
            conv_kernel,
        )
        _pair(
            slots,
            f"{embed}.layer_norm",
            backbone.get_layer(f"{stage}_patch_embed_norm"),
        )
        for j in range(backbone.depths[i]):
            _block_slots(slots, backbone, i, j)
        _pair(
            slots,
            f"encoder.layer_norm.{i}",
            backbone.get_layer(f"{stage}_norm"),
        )
    return slots


def load_weights(backbone, folder):
    """Assigns the encoder weights of the checkpoint in `folder`.

    Every encoder tensor must map to exactly one variable of the same
    shape; otherwise a CheckpointError lists the missing, unexpected and
    mismatched keys, and no variable is changed.
    """
    encoder, prefix = hf_checkpoint.encoder_tensors(
        hf_checkpoint.read_tensors(folder), ENCODER_PREFIX, HEAD_PREFIXES
    )
    converted, problems = hf_checkpoint.fit_tensors(
        weight_slots(backbone), encoder, prefix
    )
    if problems:
        raise CheckpointError(
            f"The checkpoint in {folder!r} does not fit this MiTBackbone "
            f"(config {backbone.get_config()}): " + "; ".join(problems) + ". "
            "Check that config.json belongs to these weights."
        )
    for variable, value in converted:
        variable.assign(value)
