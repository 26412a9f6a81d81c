"""SegFormer presets: keras-hub's names, the MiT encoder preset each builds
on, the decoder width and the classes of the fine-tuned checkpoint.

`params` counts encoder, decode head and classifier (what
`count_params()` reports, batch-norm statistics included). Weights load
only when on disk (`$EDGE_BACKBONES_WEIGHTS/<preset>/` or the Hugging Face
cache of `hf_repo`), as the MiT presets' do.
"""

import copy

from edge_backbones.models.mit.mit_presets import (
    PREPROCESSING,
)
from edge_backbones.models.mit.mit_presets import (
    backbone_presets as mit_presets,
)

__all__ = ["PREPROCESSING", "head_params", "segmenter_presets"]

# transformers' decoder_hidden_size of the published checkpoints
_PROJECTION_FILTERS = {"b0": 256, "b1": 256}
_DATASETS = {"ade20k": ("ADE20K", 150), "cityscapes": ("Cityscapes", 19)}


def head_params(hidden_dims, projection_filters, num_classes):
    """Weights of the decode head and classifier on levels `hidden_dims`."""
    projections = sum((c + 1) * projection_filters for c in hidden_dims)
    levels = len(hidden_dims)
    fuse = levels * projection_filters * projection_filters
    norm = 4 * projection_filters  # gamma, beta, mean, variance
    return projections + fuse + norm + (projection_filters + 1) * num_classes


def _preset(size, dataset, image_size):
    encoder = f"mit_{size}_{dataset}_{image_size}"
    entry = mit_presets[encoder]
    name, classes = _DATASETS[dataset]
    filters = _PROJECTION_FILTERS.get(size, 768)
    params = entry["metadata"]["params"] + head_params(
        entry["config"]["hidden_dims"], filters, classes
    )
    return {
        "config": {
            "image_encoder": encoder,
            "projection_filters": filters,
            "num_classes": classes,
        },
        "metadata": {
            "description": (
                f"SegFormer-{size.upper()} ({classes} {name} classes) "
                f"fine-tuned at {image_size}x{image_size}."
            ),
            "params": params,
            "hf_repo": entry["metadata"]["hf_repo"],
            "image_size": [image_size, image_size],
        },
        "preprocessing": copy.deepcopy(PREPROCESSING),
    }


segmenter_presets = {
    **{
        f"segformer_{size}_ade20k_512": _preset(size, "ade20k", 512)
        for size in ("b0", "b1", "b2", "b3", "b4")
    },
    "segformer_b5_ade20k_640": _preset("b5", "ade20k", 640),
    **{
        f"segformer_{size}_cityscapes_1024": _preset(size, "cityscapes", 1024)
        for size in ("b0", "b1", "b2", "b3", "b4", "b5")
    },
}
