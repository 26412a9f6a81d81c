"""SAM presets: Segment Anything B, L, H (SA-1B), as keras-hub names them.

Each composes a ViTDet image encoder preset (whose Hugging Face checkpoint,
`facebook/sam-vit-*`, holds all three parts) with SAM's prompt encoder and
mask decoder, which are the same for every size.
"""

__all__ = ["sam_presets"]

_PROMPT_ENCODER = {
    "hidden_size": 256,
    "image_embedding_size": (64, 64),
    "input_image_size": (1024, 1024),
    "mask_in_channels": 16,
    "activation": "gelu",
    "layer_norm_epsilon": 1e-6,
}
_MASK_DECODER = {
    "hidden_size": 256,
    "num_layers": 2,
    "intermediate_dim": 2048,
    "num_heads": 8,
    "embedding_dim": 256,
    "num_multimask_outputs": 3,
    "iou_head_depth": 3,
    "iou_head_hidden_dim": 256,
    "activation": "relu",
    "attention_downsample_rate": 2,
    "layer_norm_epsilon": 1e-6,
}


def _preset(size):
    return {
        "image_encoder": f"sam_vit_{size}",
        "prompt_encoder": dict(_PROMPT_ENCODER),
        "mask_decoder": dict(_MASK_DECODER),
        "metadata": {
            "description": (
                f"Segment Anything ViT-{size[0].upper()} (SA-1B): image "
                "encoder, prompt encoder and mask decoder; 1024x1024 input."
            ),
            "hf_repo": f"facebook/sam-vit-{size}",
            "image_size": [1024, 1024],
        },
    }


sam_presets = {
    f"sam_{size}_sa1b": _preset(size) for size in ("base", "large", "huge")
}
