"""DEPTHWISE_CONV_2D rewritten as CONV_2D with one input channel per group.

Qualcomm's HTP validator (QAIRT 2.51) refuses the int16 DEPTHWISE_CONV_2D
TFLite writes (signed 16-bit activations, signed 8-bit per-channel
weights; the supported sets it prints have unsigned 16-bit inputs), so
LiteRT's Qualcomm plugin leaves every one on the CPU and splits the graph.
A grouped CONV_2D (groups = input channels) computes the same sums and the
HTP takes it. The rewrite moves no number: the filter is transposed from
(1, kh, kw, C*M) to (C*M, kh, kw, 1), its per-channel scales stay with
their output channels, and output channel c*M + m still reads input
channel c (TFLite's grouped convolution assigns output channel o to group
o // M).
"""

import numpy as np

from edge_backbones._compat import tensorflow as tf_compat
from edge_backbones.errors import ExportError, require
from edge_backbones.runtime.model_file import operator_builtin

__all__ = ["depthwise_as_grouped_conv"]

# TFLite's op_version: a CONV_2D whose filter has fewer input channels than
# its input (a grouped convolution) is version 6
_GROUPED_CONV_VERSION = 6


def depthwise_as_grouped_conv(model_content):
    """`model_content` (.tflite bytes) with every DEPTHWISE_CONV_2D as an
    equivalent grouped CONV_2D; the bytes unchanged if there is none."""
    require("tensorflow", "export")
    schema = tf_compat.schema()
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(model_content)
    ops = schema.BuiltinOperator
    depthwise = [
        (subgraph, op)
        for subgraph in model.subgraphs
        for op in subgraph.operators
        if operator_builtin(model.operatorCodes[op.opcodeIndex])
        == ops.DEPTHWISE_CONV_2D
    ]
    if not depthwise:
        return model_content
    conv_code = _grouped_conv_code(schema, model)
    transposed = set()  # a layer called twice shares its filter tensor
    for subgraph, op in depthwise:
        op.opcodeIndex = conv_code
        op.builtinOptionsType = schema.BuiltinOptions.Conv2DOptions
        op.builtinOptions = _conv_options(schema, op.builtinOptions)
        if (id(subgraph), op.inputs[1]) not in transposed:
            _transpose_filter(schema, model, subgraph, op.inputs[1])
            transposed.add((id(subgraph), op.inputs[1]))
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _grouped_conv_code(schema, model):
    """Index of a CONV_2D operator code at the grouped version (added or
    raised; a higher version still runs the plain convolutions)."""
    conv = schema.BuiltinOperator.CONV_2D
    for index, code in enumerate(model.operatorCodes):
        if operator_builtin(code) == conv:
            code.version = max(code.version, _GROUPED_CONV_VERSION)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = conv
    code.deprecatedBuiltinCode = conv
    code.version = _GROUPED_CONV_VERSION
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _conv_options(schema, depthwise):
    options = schema.Conv2DOptionsT()
    options.padding = depthwise.padding
    options.strideW = depthwise.strideW
    options.strideH = depthwise.strideH
    options.dilationWFactor = depthwise.dilationWFactor
    options.dilationHFactor = depthwise.dilationHFactor
    options.fusedActivationFunction = depthwise.fusedActivationFunction
    return options


def _transpose_filter(schema, model, subgraph, index):
    """The filter tensor as (C*M, kh, kw, 1), in a buffer of its own (the
    converter shares equal buffers between tensors)."""
    tensor = subgraph.tensors[index]
    types = schema.TensorType
    dtype = {types.FLOAT32: np.float32, types.INT8: np.int8}.get(tensor.type)
    data = model.buffers[tensor.buffer].data
    if dtype is None or data is None:
        raise ExportError(
            f"DEPTHWISE_CONV_2D filter {tensor.name!r} is not a constant "
            "float32 or int8 tensor; the grouped-conv rewrite (the npu "
            "target's int16 graph) handles only those. Export another mode."
        )
    values = np.asarray(data, np.uint8)
    values = values.view(dtype).reshape(tensor.shape)
    buffer = schema.BufferT()
    buffer.data = (
        np.ascontiguousarray(values.transpose(3, 1, 2, 0))
        .view(np.uint8)
        .ravel()
    )
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1
    tensor.shape = [tensor.shape[3], tensor.shape[1], tensor.shape[2], 1]
    if (
        tensor.quantization is not None
        and tensor.quantization.scale is not None
    ):
        tensor.quantization.quantizedDimension = 0
