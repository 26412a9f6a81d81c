"""MiT presets: architecture (config), metadata and preprocessing.

The ImageNet-1k encoders (`mit_b*`) and the SegFormer segmentation models
fine-tuned on ADE20K and Cityscapes share the six architectures; the
fine-tuned presets load only the encoder of their checkpoint. `params`
counts the encoder's weights (what `count_params()` reports). The built
model takes any image size; `image_size` is the resolution the weights were
trained at, the natural export size (`Backbone.natural_input_size`).

As timm's pretrained configs do, each preset carries its preprocessing
(`runtime.preprocess`'s spec): SegFormer's image processor resizes the
whole frame (no crop) bilinearly and normalizes with ImageNet's mean/std.
"""

import copy

from edge_backbones.core.preprocessing import IMAGENET_PREPROCESSING

__all__ = ["PREPROCESSING", "backbone_presets", "preset_aliases"]

# SegFormer's: the frame stretched to the input size, ImageNet normalization
PREPROCESSING = {**IMAGENET_PREPROCESSING, "resize": "stretch"}

_HIDDEN_DIMS = {
    "b0": [32, 64, 160, 256],
    **{size: [64, 128, 320, 512] for size in ("b1", "b2", "b3", "b4", "b5")},
}
_DEPTHS = {
    "b0": [2, 2, 2, 2],
    "b1": [2, 2, 2, 2],
    "b2": [3, 4, 6, 3],
    "b3": [3, 4, 18, 3],
    "b4": [3, 8, 27, 3],
    "b5": [3, 6, 40, 3],
}
_PARAMS = {
    "b0": 3319392,
    "b1": 13151424,
    "b2": 24196288,
    "b3": 44072128,
    "b4": 60842688,
    "b5": 81443008,
}


def _preset(size, image_size, hf_repo, trained_on):
    blocks = sum(_DEPTHS[size])
    return {
        "config": {
            "depths": _DEPTHS[size],
            "num_layers": 4,
            "blockwise_num_heads": [1, 2, 5, 8],
            "blockwise_sr_ratios": [8, 4, 2, 1],
            "max_drop_path_rate": 0.1,
            "patch_sizes": [7, 3, 3, 3],
            "strides": [4, 2, 2, 2],
            "image_shape": (None, None, 3),
            "hidden_dims": _HIDDEN_DIMS[size],
        },
        "metadata": {
            "description": (
                f"MiT-{size.upper()} (Mix Transformer) encoder with {blocks} "
                f"transformer blocks, {trained_on}."
            ),
            "params": _PARAMS[size],
            "hf_repo": hf_repo,
            "image_size": [image_size, image_size],
        },
        "preprocessing": copy.deepcopy(PREPROCESSING),
    }


backbone_presets = {
    **{
        f"mit_{size}": _preset(
            size, 224, f"nvidia/mit-{size}", "trained on ImageNet-1k at 224"
        )
        for size in _DEPTHS
    },
    **{
        f"mit_{size}_ade20k_512": _preset(
            size,
            512,
            f"nvidia/segformer-{size}-finetuned-ade-512-512",
            "from SegFormer fine-tuned on ADE20K at 512x512",
        )
        for size in ("b0", "b1", "b2", "b3", "b4")
    },
    "mit_b5_ade20k_640": _preset(
        "b5",
        640,
        "nvidia/segformer-b5-finetuned-ade-640-640",
        "from SegFormer fine-tuned on ADE20K at 640x640",
    ),
    **{
        f"mit_{size}_cityscapes_1024": _preset(
            size,
            1024,
            f"nvidia/segformer-{size}-finetuned-cityscapes-1024-1024",
            "from SegFormer fine-tuned on Cityscapes at 1024x1024",
        )
        for size in _DEPTHS
    },
}

# keras-cv 0.9 names the ImageNet-1k MiT-B0 `mit_b0_imagenet` (its `mit_b0`
# is the architecture without weights); here `mit_b0` is that checkpoint.
preset_aliases = {"mit_b0_imagenet": "mit_b0"}
