"""Where the time goes: per-op latency of a .tflite model, by op type.

LiteRT 2.3's Python interpreter exposes no per-op profiler (its C++
`benchmark_model --enable_op_profiling` is not in the wheel, and
`tools/benchmark_litert_model.py` times whole invocations only). So each op
is timed in isolation: the model is rewritten into a one-op model (same
tensors, only that op's weight buffers), fed the activations the whole
model produced for that op on a fixed input, and invoked `runs` times; the
median is the op's time. The sum of op times is reported beside the whole
model's median: they differ by what isolation removes or adds (XNNPACK
fusing neighbouring ops, caches warm from the previous op, per-invoke
overhead counted once per op).
"""

import collections
import os
import time
from typing import Any

import numpy as np

from edge_backbones.errors import InputError, require

__all__ = [
    "METHOD",
    "op_profile",
    "op_times",
    "one_op_model",
    "format_op_profile",
]

METHOD = (
    "isolated: each op rebuilt as a one-op .tflite model fed its real "
    "input activations and timed alone (median of runs); the sum of ops "
    "differs from the whole model by fusion, cache and per-invoke effects"
)


# the whole model's interpreter (activations), threads, runs, warm-up
_Context = tuple[Any, int | None, int, int]


def _schema() -> Any:
    return require("ai_edge_litert.schema_py_generated", "runtime")


def one_op_model(model: Any, op_index: int) -> tuple[bytes, list[int]]:
    """Packed bytes of `model` (a ModelT) cut down to subgraph 0's op."""
    import copy

    import flatbuffers

    schema = _schema()
    cut = copy.copy(model)
    graph = copy.copy(model.subgraphs[0])
    op = graph.operators[op_index]
    used = [int(t) for t in list(op.inputs) + list(op.outputs) if t >= 0]
    tensors = [copy.copy(t) for t in graph.tensors]
    buffers = [schema.BufferT()]
    for index, tensor in enumerate(tensors):
        keep = index in used and _is_constant(model, tensor)
        if keep:
            buffers.append(model.buffers[tensor.buffer])
        tensor.buffer = len(buffers) - 1 if keep else 0
    graph.tensors = tensors
    graph.operators = [op]
    graph.inputs = [
        int(t) for t in op.inputs if t >= 0 and tensors[t].buffer == 0
    ]
    graph.outputs = [int(t) for t in op.outputs]
    cut.subgraphs = [graph] + list(model.subgraphs[1:])
    cut.buffers = buffers
    cut.signatureDefs = []
    builder = flatbuffers.Builder(1024)
    builder.Finish(cut.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), graph.inputs


def _is_constant(model: Any, tensor: Any) -> bool:
    buffer = model.buffers[tensor.buffer] if tensor.buffer > 0 else None
    return buffer is not None and (
        (buffer.data is not None and len(buffer.data) > 0) or buffer.size > 0
    )


def _activations(content: bytes, num_threads: int | None) -> Any:
    """Every tensor's value after one whole-model run on a fixed input.

    Without the default (XNNPACK) delegate: a delegated graph never writes
    its intermediate tensors, so they could not be read back.
    """
    from edge_backbones.runtime.backends import load_backend
    from edge_backbones.runtime.bench import _fixed_input
    from edge_backbones.runtime.edge_model import TensorSpec

    backend = load_backend("litert")
    interpreter = backend.Interpreter(
        model_content=content,
        num_threads=num_threads,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=(
            backend.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        spec = TensorSpec(
            detail["name"],
            tuple(int(d) for d in detail["shape"]),
            np.dtype(detail["dtype"]).name,
            None,
        )
        interpreter.set_tensor(detail["index"], _fixed_input(spec))
    interpreter.invoke()
    return interpreter


def _median_invoke_ms(interpreter: Any, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def _time_op(model: Any, index: int, context: _Context) -> float:
    full, num_threads, runs, warmup = context
    packed, inputs = one_op_model(model, index)
    interpreter = _interpreter(packed, num_threads)
    for position, tensor in enumerate(inputs):
        detail = interpreter.get_input_details()[position]
        interpreter.set_tensor(detail["index"], full.get_tensor(tensor))
    return _median_invoke_ms(interpreter, runs, warmup)


def _interpreter(content: bytes, num_threads: int | None) -> Any:
    from edge_backbones.runtime.backends import load_backend

    interpreter = load_backend("litert").Interpreter(
        model_content=content, num_threads=num_threads
    )
    interpreter.allocate_tensors()
    return interpreter


def op_profile(
    model_path: str | os.PathLike[str],
    num_threads: int | None = 1,
    runs: int = 20,
    warmup: int = 3,
    top: int = 10,
) -> dict[str, Any]:
    """Per-op and per-op-type time of subgraph 0 of `model_path`.

    Returns a JSON-ready dict: model, threads, method, whole_model_ms,
    sum_of_ops_ms, by_type [{op, count, total_ms, share}], top_ops
    [{index, op, output, ms}] (the `top` slowest ops).

    Raises:
        InputError: runs < 1, warmup < 0 or top < 1.
        ModelFileError: `model_path` is not a readable .tflite file.
        MissingDependencyError: ai-edge-litert is not installed.
    """
    if runs < 1 or warmup < 0 or top < 1:
        raise InputError(
            f"op profile needs runs >= 1, warmup >= 0, top >= 1; got "
            f"runs={runs}, warmup={warmup}, top={top}."
        )
    whole_ms, ops = op_times(model_path, num_threads, runs, warmup)
    return _summary(model_path, num_threads, whole_ms, ops, top)


def op_times(
    model: str | os.PathLike[str] | bytes,
    num_threads: int | None = 1,
    runs: int = 20,
    warmup: int = 3,
) -> tuple[float, list[dict[str, Any]]]:
    """(whole model ms, [{index, op, output, ms}] of every op of subgraph
    0 in order): `op_profile`'s measurements of a path or .tflite bytes.

    Raises:
        ModelFileError: `model` is not a readable .tflite file.
        MissingDependencyError: ai-edge-litert is not installed.
    """
    from edge_backbones.runtime.model_file import read_model_file

    read_model_file(model)  # a clear ModelFileError if it is not one
    if isinstance(model, bytes):
        content = model
    else:
        with open(model, "rb") as handle:
            content = handle.read()
    parsed = _schema().ModelT.InitFromPackedBuf(content, 0)
    full = _activations(content, num_threads)
    whole = _interpreter(content, num_threads)
    for detail in whole.get_input_details():
        whole.set_tensor(detail["index"], full.get_tensor(detail["index"]))
    whole_ms = _median_invoke_ms(whole, runs, warmup)
    return whole_ms, _time_ops(parsed, (full, num_threads, runs, warmup))


def _time_ops(model: Any, context: _Context) -> list[dict[str, Any]]:
    from edge_backbones.runtime.model_file import (
        builtin_op_name,
        operator_builtin,
    )

    graph = model.subgraphs[0]
    ops = []
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        output = graph.tensors[op.outputs[0]].name if len(op.outputs) else b""
        ops.append(
            {
                "index": index,
                "op": builtin_op_name(operator_builtin(code)),
                "output": output.decode("utf-8", "replace"),
                "ms": _time_op(model, index, context),
            }
        )
    return ops


def _summary(
    model_path: str | os.PathLike[str],
    num_threads: int | None,
    whole_ms: float,
    ops: list[dict[str, Any]],
    top: int,
) -> dict[str, Any]:
    total = sum(op["ms"] for op in ops)
    # op type -> [count, total ms]
    by_type: collections.defaultdict[str, list[Any]] = collections.defaultdict(
        lambda: [0, 0.0]
    )
    for op in ops:
        by_type[op["op"]][0] += 1
        by_type[op["op"]][1] += op["ms"]
    rows = [
        {
            "op": name,
            "count": count,
            "total_ms": ms,
            "share": ms / total if total else 0.0,
        }
        for name, (count, ms) in by_type.items()
    ]
    rows.sort(key=lambda r: r["total_ms"], reverse=True)
    return {
        "model": os.fspath(model_path),
        "threads": num_threads,
        "method": METHOD,
        "whole_model_ms": whole_ms,
        "sum_of_ops_ms": total,
        "by_type": rows,
        "top_ops": sorted(ops, key=lambda o: o["ms"], reverse=True)[:top],
    }


def format_op_profile(profile: dict[str, Any]) -> str:
    """The per-type table and the slowest ops, as text."""
    lines = [
        f"{os.path.basename(profile['model'])}  threads={profile['threads']}"
        f"  whole model {profile['whole_model_ms']:.3f} ms, sum of ops "
        f"{profile['sum_of_ops_ms']:.3f} ms",
        f"method: {profile['method']}",
        f"{'op type':<24}{'count':>6}{'total ms':>11}{'share %':>9}",
    ]
    for row in profile["by_type"]:
        lines.append(
            f"{row['op']:<24}{row['count']:>6}{row['total_ms']:>11.3f}"
            f"{row['share'] * 100:>9.1f}"
        )
    lines.append(f"slowest {len(profile['top_ops'])} ops:")
    for op in profile["top_ops"]:
        lines.append(
            f"  #{op['index']:<5}{op['op']:<22}{op['ms']:>9.3f} ms  "
            f"{op['output']}"
        )
    return "\n".join(lines)
