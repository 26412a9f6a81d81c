"""The one checkpoint every tool converts, its inputs and its float outputs.

`SegformerModel(SegformerConfig())` (the SegFormer-B0 encoder), or with
`task="segmentation"` `SegformerForSemanticSegmentation` (the encoder and
its decode head, 150 classes as ADE20K's), with `torch.manual_seed(0)`,
saved with `save_pretrained`: nothing is downloaded, and every tool reads
the same weights. Every model in the
benchmark takes the same NHWC float input, made from the bundled photos
with the Hugging Face SegFormer preprocessing (0-255 RGB / 255, ImageNet
mean and std), and the PyTorch float model on those inputs is the
reference every artifact is compared with.
"""

import dataclasses

import numpy as np

from edge_backbones.errors import require

__all__ = [
    "LEVELS",
    "LOGITS",
    "SEGMENTATION",
    "Inputs",
    "hf_preprocessing",
    "load_inputs",
    "save_checkpoint",
    "torch_levels",
    "torch_logits",
    "torch_module",
    "torch_reference",
]

# SegFormer's four stages, under our pyramid names (strides 4, 8, 16, 32)
LEVELS = ("P1", "P2", "P3", "P4")
# the segmenter's one output compared: logits at 1/4 resolution, NHWC
LOGITS = "logits"
SEGMENTATION = "segmentation"
# ADE20K's class count, as the ade20k_512 presets
NUM_LABELS = 150


def save_checkpoint(folder, config=None, seed=0, task="backbone"):
    """Writes a seeded random `SegformerModel` to `folder`; its config.

    `config`: SegformerConfig arguments (default: B0, the library's own
    defaults). `task="segmentation"`: a `SegformerForSemanticSegmentation`
    (150 classes unless `config` says otherwise, with `id2label`). The
    folder holds config.json + model.safetensors, what
    `edge_backbones.from_preset(folder)` and `from_pretrained` both read.
    """
    torch = require("torch", "bench")
    transformers = require("transformers", "bench")
    torch.manual_seed(seed)
    arguments = dict(config or {})
    if task == SEGMENTATION:
        labels = arguments.setdefault("num_labels", NUM_LABELS)
        arguments.setdefault(
            "id2label", {i: f"class_{i}" for i in range(labels)}
        )
        hf_config = transformers.SegformerConfig(**arguments)
        model = transformers.SegformerForSemanticSegmentation(hf_config)
    else:
        hf_config = transformers.SegformerConfig(**arguments)
        model = transformers.SegformerModel(hf_config)
    model.eval().save_pretrained(folder)
    return hf_config


def hf_preprocessing():
    """SegformerImageProcessor's normalization as a runtime preprocessing."""
    from transformers.image_utils import (
        IMAGENET_DEFAULT_MEAN,
        IMAGENET_DEFAULT_STD,
    )

    return {
        "color_order": "RGB",
        "resize": "stretch",
        "interpolation": "linear",
        "pixels_in_graph": False,
        "scale": 1 / 255,
        "mean": list(IMAGENET_DEFAULT_MEAN),
        "std": list(IMAGENET_DEFAULT_STD),
    }


@dataclasses.dataclass
class Inputs:
    """Model inputs (H, W, 3) float32, NHWC once batched."""

    calibration: list
    holdout: list
    source: str


def load_inputs(calibration, size):
    """The photos' calibration and held-out splits as model inputs.

    `calibration`: a folder with a manifest (the bundled `calibration/`)
    or a `CalibrationSet`; its manifest's split decides which photos
    calibrate and which are held out, as in `edge_backbones.export()`.
    """
    from edge_backbones.core.image_sets import CalibrationSet
    from edge_backbones.exporter.calibration import load_photos, preprocessed

    calib = (
        calibration
        if isinstance(calibration, CalibrationSet)
        else load_photos(calibration)
    )
    spec = hf_preprocessing()

    def split(name):
        return [
            np.asarray(a, np.float32)
            for a in preprocessed(calib, name, spec, size)
        ]

    return Inputs(split("calibration"), split("holdout"), str(calib.source))


def torch_levels(folder):
    """The checkpoint in PyTorch as NHWC in -> the four levels NHWC out.

    A `torch.nn.Module`, so the torch-based peers convert exactly the
    model the reference runs.
    """
    torch = require("torch", "bench")
    transformers = require("transformers", "bench")

    class SegformerLevels(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = transformers.SegformerModel.from_pretrained(folder)

        def forward(self, images):
            pixels = images.permute(0, 3, 1, 2)
            hidden = self.model(
                pixel_values=pixels, output_hidden_states=True
            ).hidden_states
            return tuple(h.permute(0, 2, 3, 1) for h in hidden)

    return SegformerLevels().eval()


def torch_logits(folder):
    """The segmentation checkpoint in PyTorch: NHWC in -> (logits NHWC,)
    at 1/4 resolution, as transformers returns them (no upsampling)."""
    torch = require("torch", "bench")
    transformers = require("transformers", "bench")

    class SegformerLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = (
                transformers.SegformerForSemanticSegmentation.from_pretrained(
                    folder
                )
            )

        def forward(self, images):
            logits = self.model(pixel_values=images.permute(0, 3, 1, 2))
            return (logits.logits.permute(0, 2, 3, 1),)

    return SegformerLogits().eval()


def torch_module(folder, task="backbone"):
    """`torch_logits` for a segmentation checkpoint, else `torch_levels`."""
    if task == SEGMENTATION:
        return torch_logits(folder)
    return torch_levels(folder)


def torch_reference(module, images, names=LEVELS):
    """{output name: (N, h, w, c) float32} of the PyTorch float model
    (`names`: LEVELS, or (LOGITS,) for `torch_logits`)."""
    torch = require("torch", "bench")
    outputs = {name: [] for name in names}
    with torch.no_grad():
        for image in images:
            values = module(torch.from_numpy(image[None]))
            for name, value in zip(names, values, strict=True):
                outputs[name].append(value.numpy())
    return {name: np.concatenate(v) for name, v in outputs.items()}
