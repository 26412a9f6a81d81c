"""Quantizing a float .tflite with ai-edge-quantizer (AEQ), public API only.

Measured against our TensorFlow-converter path (export/README.md, "Full
int8"); not the package's backend: on the same graph and ranges it is no
more faithful, and it cannot quantize L2_NORMALIZATION (see below).
Needs the `bench` extra.

AEQ quantizes the converted float graph (not a SavedModel): it runs the
graph on the calibration images (`Quantizer.calibrate`), maps each
activation's range to int8 / int16, and rewrites the flatbuffer; graph
inputs and outputs become integer too. Our own activation ranges
(`calibration_ranges`) replace AEQ's where asked: AEQ's calibration keeps
a moving average of per-image min/max, which under-covers the images that
come last.

AEQ has no L2_NORMALIZATION: on the `integer_layer_norm` graph it leaves
each one in float between DEQUANTIZE / QUANTIZE. It quantizes the plain
layer norm (SUB, MUL, MEAN, RSQRT) instead.
"""

import numpy as np

from edge_backbones.errors import ExportError, require

__all__ = ["AEQ_RECIPES", "quantize"]

# AEQ's own recipes (ai_edge_quantizer.recipe), and for int8_mixed static
# int8 on the ops XNNPACK runs in int8 (the rest stays float)
AEQ_RECIPES = (
    "static_wi8_ai8",
    "static_wi8_ai16",
    "static_wi8_ai8_fc_conv",
    "static_wi8_ai8_ln16",
)
_FC_CONV = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
# the ops of every layer norm (their tensors are named `.../<x>norm<y>_1/op`)
LAYER_NORM_REGEX = r".*norm[^/]*/.*"


def quantize(
    float_model, samples, recipe="static_wi8_ai8", ranges=None, int16_ops=()
):
    """Integer .tflite bytes of `float_model` (bytes) by AEQ's `recipe`.

    Args:
        samples: calibration inputs, each (1, H, W, 3) float32, for the
            graph's single input of its `serving_default` signature.
        recipe: a key of `AEQ_RECIPES`.
        ranges: None (AEQ's own calibration) or a method of
            `calibration_ranges` ("minmax", "percentile:99.99", "mse")
            whose ranges replace AEQ's.
        int16_ops: TFLite op names (e.g. "SOFTMAX") whose activations are
            int16 instead (a16w8; integer requantizes join them to int8).
    """
    require("ai_edge_quantizer", "bench")
    from ai_edge_quantizer import quantizer

    if recipe not in AEQ_RECIPES:
        raise ExportError(
            f"AEQ recipe {recipe!r} is not one we use; known: "
            f"{list(AEQ_RECIPES)}."
        )
    aeq = quantizer.Quantizer(bytearray(float_model))
    _load_recipe(aeq, recipe)
    from ai_edge_quantizer import qtyping

    for op in int16_ops:
        aeq.add_static_config(
            ".*", qtyping.TFLOperationName[op], activation_num_bits=16,
            weight_num_bits=8,
        )  # fmt: skip
    calibration = {"serving_default": [{"images": s} for s in samples]}
    qsvs = aeq.calibrate(calibration, num_threads=2)
    if ranges is not None:
        qsvs = _replace_ranges(float_model, samples, qsvs, ranges, recipe)
    result = aeq.quantize(qsvs, enable_progress_report=False)
    return bytes(result.quantized_model)


def _load_recipe(aeq, recipe):
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer import recipe as aeq_recipe

    if recipe == "static_wi8_ai8_ln16":  # int16 inside the layer norms
        aeq.load_quantization_recipe(aeq_recipe.static_wi8_ai8())
        aeq.add_static_config(
            LAYER_NORM_REGEX, qtyping.TFLOperationName.ALL_SUPPORTED,
            activation_num_bits=16, weight_num_bits=8,
        )  # fmt: skip
        return
    if recipe != "static_wi8_ai8_fc_conv":
        aeq.load_quantization_recipe(getattr(aeq_recipe, recipe)())
        return
    for op in _FC_CONV:
        aeq.add_static_config(
            ".*", qtyping.TFLOperationName[op], activation_num_bits=8,
            weight_num_bits=8,
        )  # fmt: skip


def _replace_ranges(float_model, samples, qsvs, method, recipe):
    from edge_backbones.exporter.calibration_ranges import activation_ranges

    bits = 16 if recipe.endswith("ai16") else 8
    found = activation_ranges(float_model, samples, list(qsvs), method, bits)
    replaced = {}
    for name, qsv in qsvs.items():
        if name not in found or not qsv:
            replaced[name] = qsv
            continue
        low, high = found[name]
        shape = np.shape(qsv["min"])
        replaced[name] = {
            **qsv,
            "min": np.full(shape, low, np.float32),
            "max": np.full(shape, high, np.float32),
        }
    return replaced
