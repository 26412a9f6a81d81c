"""The serving graph: a backbone traced at batch 1 and a fixed image size.

A fixed batch of 1 and a static spatial size keep the converted graph free of
SHAPE/GATHER/PACK plumbing and dynamic tensors.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge_backbones.atomic_io import staged_directory
from edge_backbones.errors import require

__all__ = [
    "INPUT_NAME",
    "model_preprocessing",
    "reference_outputs",
    "serving_graph",
    "serving_model",
    "write_saved_model",
]

INPUT_NAME = "images"


def serving_model(
    backbone: Any,
    image_size: Sequence[int],
    out_features: Sequence[str] | None = None,
) -> Any:
    """A Keras model: `images` (1, H, W, 3) float32 -> {level: tensor}.

    The backbone's own layers (and weights: quantized, mixed-precision or
    not) are applied again to a fixed-size input; they read sizes at call
    time, so a backbone built for another size (or for any size) traces
    statically at this one.
    """
    if hasattr(backbone, "serving_model"):  # a foreign_model.ForeignModel
        return backbone.serving_model(image_size, out_features)
    from edge_backbones.exporter.keras_quantized import float_equivalent

    backbone = float_equivalent(backbone)  # Keras-quantized: see there
    keras = require("keras", "export")
    height, width = image_size
    images = keras.Input((height, width, 3), batch_size=1, name=INPUT_NAME)
    extractor = backbone.feature_extractor(out_features=out_features)
    # Re-apply the same layers to the fixed-size input (a flat graph) rather
    # than nesting `extractor`: SavedModel export traces every nested model's
    # default signature at its own (None, None) input size, which layers
    # that need static sizes (ViTDet's windows and position tables) refuse.
    single = not isinstance(extractor.input, (list, tuple))
    flat = keras.models.clone_model(
        extractor,
        input_tensors=images if single else [images],
        clone_function=lambda layer: layer,
    )
    return keras.Model(images, flat.output, name="serving")


def write_saved_model(model: Any, path: str) -> str:
    """Writes `model` as a SavedModel with one `serving_default` signature.

    Its input is named like the model's input and its outputs are the model's
    dict keys (the pyramid level names). Written to a temporary folder first,
    then moved into place.
    """
    keras = require("keras", "export")
    tf = require("tensorflow", "export")
    spec = model.inputs[0]
    # not `archive.track(model)`: the archive finds the variables the
    # endpoint uses itself, and tracking the model as well writes each
    # weight twice (as the Keras variable and as the tf.Variable under
    # it), which doubles the SavedModel and every copy the converter loads
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        "serving_default",
        lambda images: model(images),
        input_signature=[
            tf.TensorSpec(spec.shape, spec.dtype, name=INPUT_NAME)
        ],
    )
    with staged_directory(path) as staging:
        archive.write_out(staging, verbose=False)
    return path


def model_preprocessing(backbone: Any, pixels_in_graph: Any) -> Any:
    """The backbone's preprocessing spec, with `pixels_in_graph` set: the
    dict the artifact's metadata carries."""
    spec = dict(backbone.preprocessing)
    spec["pixels_in_graph"] = bool(pixels_in_graph)
    return spec


def serving_graph(
    backbone: Any, size: Any, out_features: Any, preprocessing: Any
) -> Any:
    """The model an export converts: `serving_model`, and with pixels in
    the graph a per-channel normalization of raw pixels in front."""
    keras = require("keras", "export")
    model = serving_model(backbone, size, out_features)
    if not preprocessing["pixels_in_graph"]:
        return model
    std = np.asarray(preprocessing["std"], np.float32)
    mean = np.asarray(preprocessing["mean"], np.float32)
    # (p * scale - mean) / std as one per-channel multiply-add
    normalize = keras.layers.Rescaling(
        scale=float(preprocessing["scale"]) / std,
        offset=-mean / std,
        name="normalize",
    )
    pixels = keras.Input((*size, 3), batch_size=1, name=INPUT_NAME)
    return keras.Model(pixels, model(normalize(pixels)), name="serving")


def reference_outputs(serving: Any, holdout: Any) -> Any:
    """{level: (N, ...)} of the Keras serving graph on the held-out inputs:
    what every exported artifact is compared with.

    The model runs as one `tf.function`, traced once at batch 1 and
    reused for every input: eager Keras holds each op's intermediates
    until Python frees them (on sam_vit_base at 1024, 6.3 blocks the size
    of one attention score matrix at the peak), a graph frees each tensor
    after its last use (2.5 blocks).
    """
    tf = require("tensorflow", "export")
    spec = serving.inputs[0]
    run = tf.function(
        lambda images: serving(images, training=False),
        input_signature=[tf.TensorSpec(spec.shape, spec.dtype)],
        autograph=False,
    )
    outputs = [run(tf.constant(x[None], spec.dtype)) for x in holdout]
    return {
        name: np.concatenate([np.asarray(o[name]) for o in outputs])
        for name in outputs[0]
    }
