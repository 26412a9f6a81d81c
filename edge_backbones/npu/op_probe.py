"""One op at a time: QNN's simulated HTP against LiteRT's int8 CPU kernels.

An int8 artifact's ops are cut out one by one (the op, its constants, its
activation inputs as graph inputs), each is compiled for a Qualcomm SoC and
run in QNN's x86 HTP simulation on the inputs LiteRT's CPU run produced for
that op on real photos. The outputs are compared, in quantization steps
(LSB), with LiteRT's optimized kernels, its reference kernels and XNNPACK:
the first two agree to the step on most ops, so a kernel the HTP computes
differently stands out (docs/npu.md, "Which ops the HTP computes
differently"). Whole-graph probes that expose every tensor do not compile
(QNN cannot make some layout casts graph outputs); single ops do.
"""

import copy
import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "OpAgreement",
    "builtin_op_names",
    "capture_tensors",
    "probe_ops",
    "replay",
    "single_op_model",
]

_INT_TYPES = (np.int8, np.int32)


@dataclasses.dataclass
class OpAgreement:
    index: int
    kind: str
    output_std_lsb: float  # spread of the CPU output around its zero point
    # engine -> (fraction of elements off, max |difference| in LSB, mean
    # signed difference in LSB), each vs LiteRT's optimized int8 kernels;
    # empty when QNN could not compile the op on its own
    engines: dict[str, tuple[float, float, float]]

    def row(self) -> str:
        """This op's row of the agreement table (Markdown)."""
        if not self.engines:
            return (
                f"| {self.index} | {self.kind} | QNN cannot compile it alone |"
            )
        cells = " | ".join(
            f"{off * 100:.1f}% / {worst} / {mean:+.3f}"
            for off, worst, mean in self.engines.values()
        )
        spread = f"{self.output_std_lsb:.1f}"
        return f"| {self.index} | {self.kind} | {spread} | {cells} |"


def builtin_op_names() -> dict[int, str]:
    """TFLite builtin op codes -> names ("L2_NORMALIZATION")."""
    from ai_edge_litert import schema_py_generated as schema

    return {
        v: k
        for k, v in vars(schema.BuiltinOperator).items()
        if not k.startswith("_")
    }


def capture_tensors(
    path: str, inputs: Iterable[npt.NDArray[Any]]
) -> list[dict[int, npt.NDArray[Any]]]:
    """Every int8/int32 tensor of `path` on LiteRT's optimized kernels.

    `inputs` are quantized input batches; returns one {tensor index:
    array} per input.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=path,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=(
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        ),
    )
    interpreter.allocate_tensors()
    runs = []
    for x in inputs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        runs.append({
            d["index"]: interpreter.get_tensor(d["index"]).copy()
            for d in interpreter.get_tensor_details()
            if d["dtype"] in _INT_TYPES
        })  # fmt: skip
    return runs


def _is_constant(model, tensor):
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def single_op_model(
    model: Any, index: int, path: str
) -> tuple[list[int], list[int]]:
    """Writes op `index` of `model` (a ModelT) alone to `path`.

    Returns (activation input tensor indices, output tensor indices);
    indices are those of the source graph. Every output of the op is a
    graph output (a SPLIT with dangling outputs aborts QNN's loader).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = copy.deepcopy(model)
    graph = model.subgraphs[0]
    op = graph.operators[index]
    inputs = [
        i
        for i in op.inputs
        if i >= 0 and not _is_constant(model, graph.tensors[i])
    ]
    graph.operators, graph.inputs = [op], inputs
    graph.outputs = list(op.outputs)
    signature = model.signatureDefs[0]
    signature.inputs, signature.outputs = [], []
    for name, tensor, side in (
        *((f"in{i}", i, signature.inputs) for i in inputs),
        *((f"out{i}", i, signature.outputs) for i in op.outputs),
    ):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, tensor
        side.append(entry)
    model.metadata = None  # our digest would no longer match
    flatbuffer_utils.write_model(model, path)
    return inputs, list(op.outputs)


def _cpu_outputs(path, feeds, output):
    """Tensor `output` of the single-op model on XNNPACK and on the
    reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    outputs = {}
    for engine, resolver in (
        ("xnnpack", OpResolverType.AUTO),
        ("reference", OpResolverType.BUILTIN_REF),
    ):
        interpreter = Interpreter(
            model_path=path, experimental_op_resolver_type=resolver
        )
        interpreter.allocate_tensors()
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], feeds[detail["index"]])
        interpreter.invoke()
        outputs[engine] = interpreter.get_tensor(output)
    return outputs


def _agreement(index, kind, graph, output, wants, gots):
    zero = graph.tensors[output].quantization.zeroPoint[0]
    centered = np.concatenate([w.ravel() for w in wants]).astype(float) - zero
    engines = {}
    for engine in gots[0]:
        d = np.concatenate([
            g[engine].astype(np.int32).ravel() - w.astype(np.int32).ravel()
            for g, w in zip(gots, wants, strict=True)
        ])  # fmt: skip
        engines[engine] = (
            float(np.mean(d != 0)),
            int(np.abs(d).max()),
            float(d.mean()),
        )
    return OpAgreement(index, kind, float(centered.std()), engines)


def probe_ops(
    path: str,
    inputs: Sequence[npt.NDArray[Any]],
    soc: Any,
    kinds: Iterable[str],
    per_kind: int,
    work: str,
) -> list[OpAgreement]:
    """OpAgreement for the first `per_kind` ops of each kind in `kinds`.

    `inputs`: quantized input batches; `soc`: a Qualcomm `socs.Soc`.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    from edge_backbones.npu.sdk import toolchain_for

    model = flatbuffer_utils.read_model(path)
    graph, names = model.subgraphs[0], builtin_op_names()
    runs, toolchain = capture_tensors(path, inputs), toolchain_for(soc)
    seen: dict[str, int] = {}
    results: list[OpAgreement] = []
    for index, op in enumerate(graph.operators):
        kind = names[model.operatorCodes[op.opcodeIndex].builtinCode]
        if kind not in kinds or seen.get(kind, 0) >= per_kind:
            continue
        seen[kind] = seen.get(kind, 0) + 1
        folder = os.path.join(work, f"op{index}")
        runner = _OpRunner(model, index, soc, toolchain, folder)
        if runner.htp is None:
            # e.g. a MUL whose inputs QNN wants in another layout when it
            # is the whole graph; probe the ops around it instead
            results.append(OpAgreement(index, kind, float("nan"), {}))
            continue
        output, gots = runner.outputs[0], []
        for run in runs:
            got = _cpu_outputs(runner.path, run, output)
            got["qnn-htp"] = runner.on_htp(run, graph)[0]
            gots.append(got)
        wants = [run[output] for run in runs]
        results.append(_agreement(index, kind, graph, output, wants, gots))
    return results


class _OpRunner:
    """One op of the graph, runnable on the CPU and (if QNN takes it alone)
    on the simulated HTP."""

    def __init__(self, model, index, soc, toolchain, folder):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        from edge_backbones.errors import CompileError
        from edge_backbones.npu.compile import run_plugin
        from edge_backbones.runtime.npu_engines import QnnHtpSimulatorEngine

        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "op.tflite")
        self.inputs, self.outputs = single_op_model(model, index, self.path)
        self._cpu = Interpreter(
            model_path=self.path,
            experimental_op_resolver_type=(
                OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
        )
        self._cpu.allocate_tensors()
        try:
            compiled, _, _ = run_plugin(self.path, soc, toolchain, folder)
            self.htp = QnnHtpSimulatorEngine(compiled)
        except CompileError:
            self.htp = None

    def on_cpu(self, values):
        for detail in self._cpu.get_input_details():
            self._cpu.set_tensor(detail["index"], values[detail["index"]])
        self._cpu.invoke()
        return [self._cpu.get_tensor(i).copy() for i in self.outputs]

    def on_htp(self, values, graph):
        from edge_backbones.runtime.npu_engines import qnn_tensor_name

        def name(i):
            return qnn_tensor_name(graph.tensors[i].name.decode())

        feeds = {name(i): values[i] for i in self.inputs}
        outs = self.htp.run_named([name(i) for i in self.outputs], feeds)
        return [
            np.asarray(v).reshape(graph.tensors[i].shape)
            for v, i in zip(outs, self.outputs, strict=True)
        ]


def replay(
    path: str, soc: Any, work: str
) -> Callable[..., dict[int, npt.NDArray[Any]]]:
    """A function (quantized input, kinds on the CPU) -> graph outputs.

    Runs the graph op by op, each op compiled alone for `soc` and run in
    the simulated HTP, except ops of the kinds given (and ops QNN cannot
    compile alone), which run on LiteRT's CPU kernels; each op reads the
    previous ops' outputs. Which kinds, moved to the CPU, bring the
    simulation to LiteRT's result says where the distance comes from.
    Returns {output tensor index: int8 array}.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    from edge_backbones.npu.sdk import toolchain_for

    model = flatbuffer_utils.read_model(path)
    graph, names = model.subgraphs[0], builtin_op_names()
    toolchain = toolchain_for(soc)
    runners = [
        _OpRunner(model, i, soc, toolchain, os.path.join(work, f"op{i}"))
        for i in range(len(graph.operators))
    ]
    kinds = [
        names[model.operatorCodes[op.opcodeIndex].builtinCode]
        for op in graph.operators
    ]

    def run(x, cpu_kinds=()):
        values = {graph.inputs[0]: x}
        for runner, kind in zip(runners, kinds, strict=True):
            on_cpu = runner.htp is None or kind in cpu_kinds
            outs = (
                runner.on_cpu(values)
                if on_cpu
                else runner.on_htp(values, graph)
            )
            values.update(zip(runner.outputs, outs, strict=True))
        return {i: values[i] for i in graph.outputs}

    return run
