"""Calibration ranges that TFLite's calibrator records wrongly, measured again.

TFLite's calibrator runs the float model in an interpreter that lets an ADD
write its result into the buffer of an input it consumes last; the range
logged for that input is then the ADD's. In our blocks that input is the
MLP's `fc2` output (residual `x + fc2(...)`): its int8 range became the
residual stream's, 30-60x wider than its values, so `fc2` kept 3-11 int8
levels (std 0.4-1.4 steps) on every engine that follows TFLite's int8
semantics, and OpenVINO, which does not requantize FULLY_CONNECTED outputs,
disagreed with LiteRT there (docs/npu.md). `remeasure_tied_ranges` finds
the tensors whose logged range is bit-identical to their consumer's output
range, makes them outputs of a copy of the model (an interpreter never
writes into an output in place) and logs their true min/max over the same
representative dataset.
"""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["remeasure_tied_ranges", "tied_tensors"]


def _pack(model):
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _range(tensor):
    quant = tensor.quantization
    if quant is None or quant.min is None or len(quant.min) != 1:
        return None
    return float(quant.min[0]), float(quant.max[0])


def tied_tensors(model: Any) -> list[int]:
    """Indices of tensors whose range equals their consumer's output's.

    Only activation tensors produced by an op and read by exactly one op
    are candidates (what an in-place kernel may overwrite).
    """
    graph = model.subgraphs[0]
    produced = {o for op in graph.operators for o in op.outputs}
    readers: dict[Any, Any] = {}
    for op in graph.operators:
        for i in op.inputs:
            readers.setdefault(i, []).append(op)
    tied = []
    for index, ops in readers.items():
        if index not in produced or len(ops) != 1 or index in graph.outputs:
            continue
        own = _range(graph.tensors[index])
        output = _range(graph.tensors[ops[0].outputs[0]])
        if own is not None and own == output:
            tied.append(index)
    return sorted(tied)


def _measure(content, indices, dataset):
    """(min, max) of each tensor in `indices` over `dataset()`."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    graph = model.subgraphs[0]
    first_extra = len(graph.outputs)
    graph.outputs = [*graph.outputs, *indices]
    interpreter = Interpreter(
        model_content=_pack(model),
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    interpreter.allocate_tensors()
    inputs = [d["index"] for d in interpreter.get_input_details()]
    by_name = _signature_input_indices(interpreter)
    outputs = interpreter.get_output_details()[first_extra:]
    low = np.full(len(indices), np.inf)
    high = np.full(len(indices), -np.inf)
    for sample in dataset():
        if isinstance(sample, dict) and len(sample) > 1:
            # several inputs: the dict's order need not be the tensors'
            pairs = [(by_name[name], v) for name, v in sample.items()]
        else:
            values = sample.values() if isinstance(sample, dict) else sample
            pairs = zip(inputs, values, strict=True)
        for index, value in pairs:
            interpreter.set_tensor(index, np.asarray(value))
        interpreter.invoke()
        for k, detail in enumerate(outputs):
            v = interpreter.get_tensor(detail["index"])
            low[k], high[k] = min(low[k], v.min()), max(high[k], v.max())
    return low, high


def _signature_input_indices(interpreter: Any) -> dict[str, int]:
    """{signature input name: tensor index} of the serving signature."""
    signatures = interpreter.get_signature_list()
    if not signatures:
        return {}
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    indices = {n: d["index"] for n, d in runner.get_input_details().items()}
    # a live runner keeps invoke() from running
    del runner
    return indices


def remeasure_tied_ranges(
    content: bytes,
    dataset: Callable[[], Iterable[Any]],
    log: Callable[[str], object] | None = None,
) -> bytes:
    """`content` (a calibrated model) with its tied ranges re-measured.

    `dataset` is the converter's representative_dataset callable.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    indices = tied_tensors(model)
    if not indices:
        return content
    low, high = _measure(content, indices, dataset)
    tensors = model.subgraphs[0].tensors
    for index, lo, hi in zip(indices, low, high, strict=True):
        tensors[index].quantization.min = [float(lo)]
        tensors[index].quantization.max = [float(hi)]
    if log:
        log(
            f"calibration: re-measured {len(indices)} ranges the "
            "calibrator logged as their consumer's (in-place ADD)"
        )
    return _pack(model)
