"""Multiply-accumulate counts read from a .tflite file's tensor shapes.

Counted from the converted graph itself rather than from the Keras model, so
the count matches what the interpreter runs (fused, folded, re-laid-out ops
included) and needs no TensorFlow. Only the four ops that carry nearly all of
a vision transformer's arithmetic are counted; elementwise ops, softmax and
normalization are left out, as MAC counts conventionally do.
"""

import math
import os
from collections.abc import Callable
from typing import Any

from edge_backbones.runtime.model_file import TFLiteModelFile, read_model_file

__all__ = ["count_macs"]

# the shapes of an op's input or output tensors
Shapes = list[tuple[int, ...]]


def _conv_2d(inputs: Shapes, outputs: Shapes) -> int:
    # filter: [out_channels, kh, kw, in_channels / groups]
    _, kh, kw, in_per_group = inputs[1]
    return math.prod(outputs[0]) * kh * kw * in_per_group


def _depthwise_conv_2d(inputs: Shapes, outputs: Shapes) -> int:
    # filter: [1, kh, kw, out_channels]; one input channel per output
    _, kh, kw, _ = inputs[1]
    return math.prod(outputs[0]) * kh * kw


def _fully_connected(inputs: Shapes, outputs: Shapes) -> int:
    # weights: [units, in_features]
    return math.prod(outputs[0]) * inputs[1][-1]


def _batch_matmul(inputs: Shapes, outputs: Shapes) -> int:
    # out [..., M, N] = A [..., M, K] @ B [..., K, N], A possibly given
    # transposed (adj_x). When A[-2] == M, K is A[-1]; otherwise A is
    # transposed and K is A[-2]. If both equal M then K == M either way, so
    # the count needs no builtin options.
    a = inputs[0]
    rows = outputs[0][-2]
    depth = a[-1] if a[-2] == rows else a[-2]
    return math.prod(outputs[0]) * depth


_COUNTERS: dict[str, Callable[[Shapes, Shapes], int]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "BATCH_MATMUL": _batch_matmul,
}


def count_macs(
    model: str | os.PathLike[str] | bytes | TFLiteModelFile,
) -> dict[str, Any]:
    """MACs of one inference of a .tflite model: a path, bytes, or a file
    already parsed by `read_model_file`.

    Returns {"total": n, "by_op": {op name: n}}.

    Raises:
        ModelFileError: `model` is not a readable .tflite file.
    """
    if not isinstance(model, TFLiteModelFile):
        model = read_model_file(model)
    by_op = dict.fromkeys(_COUNTERS, 0)
    for name, (inputs, outputs) in zip(model.ops, model.op_io, strict=True):
        counter = _COUNTERS.get(name)
        if counter is None:
            continue
        by_op[name] += counter(
            [model.tensor_shapes[i] for i in inputs if i >= 0],
            [model.tensor_shapes[i] for i in outputs],
        )
    by_op = {name: n for name, n in by_op.items() if n}
    return {"total": sum(by_op.values()), "by_op": by_op}
