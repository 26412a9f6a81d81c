"""ViTDet presets: the image encoders of Segment Anything (SAM) B, L, H.

Architecture (config), metadata and preprocessing; the weights are the
Hugging Face checkpoints named by `hf_repo`, read from local disk by
`ViTDetBackbone.from_preset`. `image_size` is the resolution the position
tables are stored for (SAM: 1024x1024), the natural export size.

As timm's pretrained configs do, each preset carries its preprocessing
(`runtime.preprocess`'s spec): SAM's image processor resizes the longest
side to the input size (bilinear), pads bottom/right (no crop) and
normalizes with ImageNet's mean/std.
"""

import copy

from edge_backbones.core.preprocessing import IMAGENET_PREPROCESSING

__all__ = ["PREPROCESSING", "backbone_presets", "preset_aliases"]

# Segment Anything's: longest side resized, padded, ImageNet normalization
PREPROCESSING = {**IMAGENET_PREPROCESSING, "resize": "longest_side_pad"}


def _sam_config(hidden_size, num_layers, num_heads, global_layers):
    return {
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "intermediate_dim": 4 * hidden_size,
        "num_heads": num_heads,
        "global_attention_layer_indices": global_layers,
        "image_shape": (1024, 1024, 3),
        "patch_size": 16,
        "num_output_channels": 256,
        "use_bias": True,
        "use_abs_pos": True,
        "use_rel_pos": True,
        "window_size": 14,
        "layer_norm_epsilon": 1e-6,
    }


def _sam_preset(
    size, params, hidden_size, num_layers, num_heads, global_layers
):
    return {
        "config": _sam_config(
            hidden_size, num_layers, num_heads, global_layers
        ),
        "metadata": {
            "description": (
                f"ViTDet-{size[0].upper()} image encoder of Segment Anything "
                "(SA-1B), with the 256-channel neck; 1024x1024 input, "
                "stride 16."
            ),
            "params": params,
            "hf_repo": f"facebook/sam-vit-{size}",
            "image_size": [1024, 1024],
        },
        "preprocessing": copy.deepcopy(PREPROCESSING),
    }


backbone_presets = {
    "sam_vit_base": _sam_preset("base", 89_670_912, 768, 12, 12, [2, 5, 8, 11]),
    "sam_vit_large": _sam_preset(
        "large", 308_278_272, 1024, 24, 16, [5, 11, 17, 23]
    ),
    "sam_vit_huge": _sam_preset(
        "huge", 637_026_048, 1280, 32, 16, [7, 15, 23, 31]
    ),
}

# keras-hub 0.17's `ViTDetBackbone.from_preset("vit_det")` example: its
# default ViTDet is the ViT-B image encoder (768 wide, 12 layers, global
# attention in 2, 5, 8, 11), which is SAM's base encoder.
preset_aliases = {"vit_det": "sam_vit_base"}
