"""Zero int32 biases on int8 FULLY_CONNECTED ops that have none.

The converter writes the projections of our attention and MLP blocks (Keras
Dense layers without bias, or whose bias folded elsewhere) as int8
FULLY_CONNECTED ops with per-channel weights and no bias input. The aarch64
build of tflite-runtime 2.14 (the last one, still what many Raspberry Pi
guides install) crashes with SIGSEGV invoking exactly that kernel: a
per-channel int8 FULLY_CONNECTED without bias (its x86-64 build and LiteRT
run it; measured by `.ci/stages/pi.sh`, docs/raspberry_pi.md). The same op
with a zero bias runs everywhere and computes the same integers (adding 0
to the int32 accumulators), so every full-int8 export carries one.
"""

import numpy as np

from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones.errors import require
from edge_backbones.runtime.model_file import operator_builtin

__all__ = ["add_zero_fc_biases"]


def add_zero_fc_biases(model_content):
    """`model_content` (.tflite bytes) with a zero int32 bias on every
    int8-activation FULLY_CONNECTED op that has none (bias scale =
    input scale x weight scale per output channel, as TFLite requires).
    Returns the bytes unchanged when no op needs one.
    """
    require("tensorflow", "export")
    schema = tf_compat.schema()
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(model_content)
    fully_connected = schema.BuiltinOperator.FULLY_CONNECTED
    added = 0
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            builtin = operator_builtin(model.operatorCodes[op.opcodeIndex])
            if builtin != fully_connected or not _needs_bias(
                schema, subgraph, op
            ):
                continue
            bias = _zero_bias(schema, model, subgraph, op)
            subgraph.tensors.append(bias)
            inputs = list(op.inputs)[:2]
            op.inputs = inputs + [len(subgraph.tensors) - 1]
            added += 1
    if not added:
        return model_content
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _needs_bias(schema, subgraph, op):
    inputs = list(op.inputs)
    if len(inputs) > 2 and inputs[2] >= 0:
        return False
    activation = subgraph.tensors[inputs[0]]
    weights = subgraph.tensors[inputs[1]]
    return (
        activation.type == schema.TensorType.INT8
        and weights.type == schema.TensorType.INT8
        and activation.quantization is not None
        and weights.quantization is not None
    )


def _zero_bias(schema, model, subgraph, op):
    activation = subgraph.tensors[op.inputs[0]]
    weights = subgraph.tensors[op.inputs[1]]
    channels = int(weights.shape[0])
    # one scale per output channel, or one for all (per-tensor weights)
    weight_scales = np.asarray(weights.quantization.scale, np.float64)
    buffer = schema.BufferT()
    buffer.data = np.zeros(channels, np.int32).view(np.uint8)
    model.buffers.append(buffer)
    quantization = schema.QuantizationParametersT()
    input_scale = np.float64(activation.quantization.scale[0])
    quantization.scale = [float(input_scale * s) for s in weight_scales]
    quantization.zeroPoint = [0] * len(weight_scales)
    quantization.quantizedDimension = 0
    tensor = schema.TensorT()
    tensor.name = _name(weights) + b"/zero_bias"
    tensor.shape = [channels]
    tensor.type = schema.TensorType.INT32
    tensor.buffer = len(model.buffers) - 1
    tensor.quantization = quantization
    return tensor


def _name(tensor):
    name = tensor.name or b"fully_connected"
    return name.encode() if isinstance(name, str) else name
