"""Reads Hugging Face `SamModel` checkpoints into `SAMBackbone`, offline.

The image encoder is read by `vit_det.convert_sam` (the `vision_encoder.`
tensors); this module reads the rest: `prompt_encoder.`, `mask_decoder.`
and the shared random-Fourier matrix `shared_image_embedding.` (which
transformers ties to `prompt_encoder.shared_embedding.`; either copy is
accepted). Tensors are read by `models.hf_checkpoint`, never unpickled.
"""

import json
import os
from typing import Any

from edge_backbones.errors import CheckpointError
from edge_backbones.models import hf_checkpoint
from edge_backbones.models.hf_checkpoint import Slot, conv_kernel, dense_kernel

__all__ = [
    "build_sam_backbone",
    "checkpoint_folder",
    "convert_mask_decoder_config",
    "convert_prompt_encoder_config",
    "load_weights",
]

VISION_PREFIX = "vision_encoder."
SHARED_KEY = "shared_image_embedding.positional_embedding"
TIED_KEY = "prompt_encoder.shared_embedding.positional_embedding"

# SamPromptEncoderConfig's and SamMaskDecoderConfig's defaults
_HF_PROMPT_DEFAULTS = {
    "hidden_size": 256,
    "image_size": 1024,
    "patch_size": 16,
    "mask_input_channels": 16,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-6,
}
_HF_DECODER_DEFAULTS = {
    "hidden_size": 256,
    "hidden_act": "relu",
    "mlp_dim": 2048,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "attention_downsample_rate": 2,
    "num_multimask_outputs": 3,
    "iou_head_depth": 3,
    "iou_head_hidden_dim": 256,
    "layer_norm_eps": 1e-6,
}


def _sam_config(hf_config, path):
    if hf_config.get("model_type") != "sam":
        raise CheckpointError(
            f"{path!r}: model_type={hf_config.get('model_type')!r}; "
            "SAMBackbone needs a whole 'sam' checkpoint (SamModel."
            "save_pretrained), not an image encoder alone. For the encoder "
            "alone use ViTDetBackbone.from_preset."
        )
    return hf_config


def convert_prompt_encoder_config(
    hf_config: Any, path: Any = "<config>"
) -> Any:
    """`SAMPromptEncoder` arguments from a Hugging Face SAM config dict."""
    config = _sam_config(hf_config, path)
    prompt = {
        **_HF_PROMPT_DEFAULTS,
        **(config.get("prompt_encoder_config") or {}),
    }
    vision = config.get("vision_config") or {}
    pos_feats = vision.get("num_pos_feats", 128)
    if 2 * pos_feats != prompt["hidden_size"]:
        raise CheckpointError(
            f"{path!r}: vision_config.num_pos_feats={pos_feats} must be half "
            f"the prompt encoder's hidden_size={prompt['hidden_size']}."
        )
    size, patch = int(prompt["image_size"]), int(prompt["patch_size"])
    return {
        "hidden_size": prompt["hidden_size"],
        "image_embedding_size": (size // patch, size // patch),
        "input_image_size": (size, size),
        "mask_in_channels": prompt["mask_input_channels"],
        "activation": prompt["hidden_act"],
        "layer_norm_epsilon": prompt["layer_norm_eps"],
    }


def convert_mask_decoder_config(hf_config: Any, path: Any = "<config>") -> Any:
    """`SAMMaskDecoder` arguments from a Hugging Face SAM config dict."""
    config = _sam_config(hf_config, path)
    decoder = {
        **_HF_DECODER_DEFAULTS,
        **(config.get("mask_decoder_config") or {}),
    }
    return {
        "hidden_size": decoder["hidden_size"],
        "num_layers": decoder["num_hidden_layers"],
        "intermediate_dim": decoder["mlp_dim"],
        "num_heads": decoder["num_attention_heads"],
        "embedding_dim": decoder["hidden_size"],
        "num_multimask_outputs": decoder["num_multimask_outputs"],
        "iou_head_depth": decoder["iou_head_depth"],
        "iou_head_hidden_dim": decoder["iou_head_hidden_dim"],
        "activation": decoder["hidden_act"],
        "attention_downsample_rate": decoder["attention_downsample_rate"],
        "layer_norm_epsilon": decoder["layer_norm_eps"],
    }


def _transpose_conv_kernel(w):
    # PyTorch ConvTranspose2d (in, out, kh, kw) -> Keras (kh, kw, out, in).
    return w.transpose(2, 3, 1, 0)


def _dense(layer, key):
    return [
        Slot(layer.kernel, f"{key}.weight", dense_kernel),
        Slot(layer.bias, f"{key}.bias"),
    ]


def _conv(layer, key, convert=conv_kernel):
    return [
        Slot(layer.kernel, f"{key}.weight", convert),
        Slot(layer.bias, f"{key}.bias"),
    ]


def _norm(layer, key):
    return [
        Slot(layer.gamma, f"{key}.weight"),
        Slot(layer.beta, f"{key}.bias"),
    ]


def _attention(layer, key):
    slots = []
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
        slots += _dense(getattr(layer, name), f"{key}.{name}")
    return slots


def _feed_forward(mlp, key):
    names = ["proj_in"]
    names += [f"layers.{j}" for j in range(mlp.num_layers - 2)]
    names.append("proj_out")
    slots = []
    for layer, name in zip(mlp.dense_layers, names, strict=True):
        slots += _dense(layer, f"{key}.{name}")
    return slots


def _prompt_encoder_slots(encoder):
    key = "prompt_encoder."
    slots = [
        Slot(encoder.positional_embedding, SHARED_KEY),
        Slot(encoder.not_a_point_embedding, f"{key}not_a_point_embed.weight"),
        Slot(encoder.no_mask_embedding, f"{key}no_mask_embed.weight"),
    ]
    for k, weight in enumerate(encoder.point_embeddings):
        slots.append(Slot(weight, f"{key}point_embed.{k}.weight"))
    mask = f"{key}mask_embed."
    for i in (1, 2, 3):
        slots += _conv(getattr(encoder, f"mask_conv{i}"), f"{mask}conv{i}")
    for i in (1, 2):
        norm = getattr(encoder, f"mask_norm{i}")
        slots += _norm(norm, f"{mask}layer_norm{i}")
    return slots


def _mask_decoder_slots(decoder):
    key = "mask_decoder."
    slots = [
        Slot(decoder.iou_token, f"{key}iou_token.weight"),
        Slot(decoder.mask_tokens, f"{key}mask_tokens.weight"),
    ]
    for i, block in enumerate(decoder.blocks):
        hf = f"{key}transformer.layers.{i}."
        slots += _attention(block.self_attention, f"{hf}self_attn")
        slots += _attention(
            block.token_to_image, f"{hf}cross_attn_token_to_image"
        )
        slots += _attention(
            block.image_to_token, f"{hf}cross_attn_image_to_token"
        )
        slots += _dense(block.mlp_fc1, f"{hf}mlp.lin1")
        slots += _dense(block.mlp_fc2, f"{hf}mlp.lin2")
        for j in (1, 2, 3, 4):
            slots += _norm(getattr(block, f"norm{j}"), f"{hf}layer_norm{j}")
    slots += _attention(
        decoder.final_attention, f"{key}transformer.final_attn_token_to_image"
    )
    slots += _norm(
        decoder.final_norm, f"{key}transformer.layer_norm_final_attn"
    )
    for i in (1, 2):
        slots += _conv(
            getattr(decoder, f"upscale_conv{i}"),
            f"{key}upscale_conv{i}",
            _transpose_conv_kernel,
        )
    slots += _norm(decoder.upscale_norm, f"{key}upscale_layer_norm")
    for i, mlp in enumerate(decoder.hypernetworks):
        slots += _feed_forward(mlp, f"{key}output_hypernetworks_mlps.{i}")
    slots += _feed_forward(decoder.iou_head, f"{key}iou_prediction_head")
    return slots


def load_weights(sam: Any, path: Any) -> Any:
    """Copies the prompt encoder, mask decoder and shared position tensors
    of checkpoint `path` into `sam` (a `SAMBackbone`).

    Raises CheckpointError listing every missing, unexpected and wrongly
    shaped tensor at once, before any variable is changed.
    """
    tensors = hf_checkpoint.read_tensors(path)
    parts = {
        key: (key, value)
        for key, value in tensors.items()
        if not key.startswith(VISION_PREFIX)
    }
    # transformers ties the two copies of the Fourier matrix and saves one
    tied = parts.pop(TIED_KEY, None)
    if tied is not None:
        parts.setdefault(SHARED_KEY, (TIED_KEY, tied[1]))
    slots = _prompt_encoder_slots(sam.prompt_encoder)
    slots += _mask_decoder_slots(sam.mask_decoder)
    converted, problems = hf_checkpoint.fit_tensors(slots, parts, counted=True)
    if problems:
        raise CheckpointError(
            f"The prompt encoder / mask decoder of the checkpoint in {path!r}"
            " do not fit the SAMBackbone built from its config.json: "
            + "; ".join(problems)
            + ". Check that config.json belongs to model.safetensors."
        )
    for variable, value in converted:
        variable.assign(value)


def _read_config(folder):
    path = os.path.join(folder, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path!r} is not a readable config.json ({exc}). A SAM "
            "checkpoint folder holds config.json + model.safetensors "
            "(SamModel.save_pretrained)."
        ) from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{path!r} holds no JSON object.")
    return config


def checkpoint_folder(preset: Any, load_weights: Any) -> Any:
    """The folder to read for `preset` (a folder, or a SAM preset name
    whose checkpoint is on this disk); None for a preset's architecture
    alone (`load_weights=False`)."""
    from edge_backbones.models import backbone
    from edge_backbones.models.sam.sam_presets import sam_presets

    if os.path.isdir(preset):
        return preset
    if preset not in sam_presets:
        raise CheckpointError(
            f"{preset!r} is neither a folder nor a SAM preset "
            f"({sorted(sam_presets)})."
        )
    if not load_weights:
        return None
    encoder_preset = sam_presets[preset]["image_encoder"]
    backbone._ensure_registered()
    candidates = backbone.local_weight_candidates(encoder_preset)
    for folder in candidates:
        if os.path.isfile(os.path.join(folder, "config.json")):
            return folder
    entry = backbone._PRESETS[encoder_preset]
    raise backbone._weights_not_found(encoder_preset, entry, candidates)


def build_sam_backbone(
    cls: Any, folder: Any, with_weights: Any, preset: Any = None, **kwargs: Any
) -> Any:
    """A `cls` (SAMBackbone) from a checkpoint folder (or a preset's
    architecture when `folder` is None)."""
    from edge_backbones.models.sam.sam_mask_decoder import SAMMaskDecoder
    from edge_backbones.models.sam.sam_prompt_encoder import SAMPromptEncoder
    from edge_backbones.models.vit_det import ViTDetBackbone, convert_sam

    if folder is None:
        from edge_backbones.models.sam.sam_presets import sam_presets

        entry = sam_presets[preset]
        encoder = ViTDetBackbone.from_preset(
            entry["image_encoder"], load_weights=False, **kwargs
        )
        prompt_config = dict(entry["prompt_encoder"])
        decoder_config = dict(entry["mask_decoder"])
    else:
        hf_config = _sam_config(_read_config(folder), folder)
        vision = convert_sam.convert_config(hf_config, folder)
        encoder = ViTDetBackbone(**{**vision, **kwargs})
        if with_weights:
            convert_sam.load_weights(encoder, folder, vision["image_shape"])
        prompt_config = convert_prompt_encoder_config(hf_config, folder)
        decoder_config = convert_mask_decoder_config(hf_config, folder)
    height, width, _ = encoder.image_shape
    patch = encoder.patch_size
    prompt_config["image_embedding_size"] = (height // patch, width // patch)
    prompt_config["input_image_size"] = (height, width)
    sam = cls(
        encoder,
        SAMPromptEncoder(**prompt_config),
        SAMMaskDecoder(**decoder_config),
    )
    if folder is not None and with_weights:
        load_weights(sam, folder)
    return sam
