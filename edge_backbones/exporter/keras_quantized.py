"""Backbones quantized by Keras (`quantize("int8")`, `DTypePolicyMap`).

Keras' int8/int4 `Dense` multiplies int8 activations by int8 kernels, which
the TFLite converter has no builtin for. Export therefore uses a float copy
whose kernels are the quantized kernels dequantized: the same weight values
(the quantization error of Keras' weights is kept), converted by our modes
(fp32 keeps them, int8/cpu quantize them again).
"""

import numpy as np

from edge_backbones._compat import keras as keras_compat
from edge_backbones.errors import ExportError, require

__all__ = ["float_equivalent"]


def float_equivalent(backbone):
    """`backbone` itself, or a float copy if Keras quantized any layer."""
    by_path = {
        layer.path: layer
        for layer in keras_compat.flatten_layers(backbone, include_self=False)
    }
    quantized = {p for p, layer in by_path.items() if layer.quantization_mode}
    if not quantized:
        return backbone
    keras = require("keras", "export")
    config = backbone.get_config()
    policy = backbone.dtype_policy
    policy = getattr(policy, "default_policy", policy)
    config["dtype"] = keras.dtype_policies.serialize(policy)
    copy = type(backbone).from_config(config)
    for layer in keras_compat.flatten_layers(copy, include_self=False):
        source = by_path[layer.path]
        if layer.path in quantized:
            _check_dense(keras, source)
            layer.kernel.assign(_dequantized_kernel(source))
            if source.bias is not None:
                layer.bias.assign(keras.ops.convert_to_numpy(source.bias))
            continue
        # a layer's own variables (its sublayers are visited on their own)
        for target, value in zip(
            _own_variables(layer), _own_variables(source), strict=True
        ):
            target.assign(value)
    return copy


def _own_variables(layer):
    return [*layer._trainable_variables, *layer._non_trainable_variables]


def _check_dense(keras, layer):
    linear = layer.activation in (None, keras.activations.linear)
    if not isinstance(layer, keras.layers.Dense) or not linear:
        raise ExportError(
            f"{layer.path} ({type(layer).__name__}) is quantized by Keras, "
            "but only Dense layers without activation can be exported from "
            "Keras' quantization; quantize with our modes instead "
            "(export(..., modes='int8'))."
        )


def _dequantized_kernel(dense):
    """The float kernel a quantized Dense computes with: its outputs on the
    identity rows (one-hot rows quantize exactly) minus its bias."""
    keras = require("keras", "export")
    identity = np.eye(dense.input_spec.axes[-1], dtype="float32")
    rows = keras.ops.convert_to_numpy(dense(identity))
    if dense.bias is not None:
        rows = rows - keras.ops.convert_to_numpy(dense.bias)
    return rows.astype("float32")
