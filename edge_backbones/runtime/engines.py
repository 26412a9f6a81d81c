"""The two ways LiteRT runs a graph, behind one small interface.

`InterpreterEngine` drives the classic `Interpreter` (all three backends;
CPU paths and delegate libraries). `CompiledModelEngine` drives LiteRT 2.x's
`CompiledModel`, the only way to reach its hardware accelerators (the GPU
accelerator ships in ai-edge-litert as libLiteRtWebGpuAccelerator.so).
Both take an input array already in the input tensor's dtype and return
the raw output arrays in the bound order; `EdgeModel` does the rest.
"""

import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from edge_backbones.errors import DelegateUnavailableError
from edge_backbones.runtime import gpu_probe
from edge_backbones.runtime.backends import Backend
from edge_backbones.runtime.delegates import delegation_summary

__all__ = [
    "Engine",
    "SignatureEngine",
    "InterpreterEngine",
    "CompiledModelEngine",
    "accelerator_available",
]


class Engine(Protocol):
    """What `EdgeModel` drives: an input array in the input tensor's dtype
    in, the raw output arrays in the bound order out."""

    @property
    def fully_delegated(self) -> bool | None: ...

    @property
    def cpu_ops(self) -> list[str] | None: ...

    def run(self, x: npt.NDArray[Any]) -> list[npt.NDArray[Any]]: ...

    def invoke(self) -> None: ...


class SignatureEngine(Engine, Protocol):
    """An engine bound by signature and tensor names (`CompiledModel`, the
    NPU simulations), not by the interpreter's tensor indices."""

    def bind(
        self,
        signature_key: str | None,
        input_name: str,
        outputs: Sequence[tuple[str, tuple[int, ...], np.dtype[Any]]],
    ) -> None: ...


class InterpreterEngine:
    """The classic `Interpreter` of any backend, allocated by the caller."""

    def __init__(self, interpreter: Any) -> None:
        self.interpreter = interpreter
        summary = delegation_summary(interpreter)
        self.delegate_nodes: int | None
        self.cpu_ops: list[str] | None
        self.delegate_nodes, self.cpu_ops = summary or (None, None)

    def bind(
        self, input_details: dict[str, Any], output_details: Iterable[Any]
    ) -> None:
        """Which tensors to feed and read (the interpreter's details)."""
        self._input_index = input_details["index"]
        self._output_indices = [d["index"] for d in output_details]

    @property
    def fully_delegated(self) -> bool | None:
        if self.delegate_nodes is None:
            return None
        return self.delegate_nodes > 0 and not self.cpu_ops

    def run(self, x: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        interpreter = self.interpreter
        interpreter.set_tensor(self._input_index, x)
        interpreter.invoke()
        # get_tensor copies: no array may pin the interpreter's memory, or
        # its next invoke() refuses to run
        return [interpreter.get_tensor(i) for i in self._output_indices]

    def invoke(self) -> None:
        """Runs on whatever input was set last (for bare timing)."""
        self.interpreter.invoke()


def accelerator_available(backend: Backend) -> bool:
    """True if `backend` offers LiteRT's CompiledModel accelerators."""
    if backend.name != "litert":
        return False
    try:
        import ai_edge_litert.compiled_model  # noqa: F401
    except ImportError:
        return False
    return True


def _native_errors(log: str) -> list[str]:
    """The error lines of LiteRT's native log, deduplicated, in order."""
    lines = []
    for line in log.splitlines():
        line = line.strip()
        if re.match(r"^(E\d{4}|ERROR|Warning: Couldn't)", line):
            # drop the "E0000 00:00:... file.cc:123]" style prefix
            text = re.sub(r"^E\d{4} [\d:.]+\s+\d+ \S+\] ", "", line)
            if text not in lines:
                lines.append(text)
    return lines


_REFUSED_HEADER = "Following operations are not supported by GPU delegate:"
_PARTITION = re.compile(
    r"(\d+) operations will run on the GPU, and the remaining (\d+) "
    r"operations? will run on the CPU"
)


def _gpu_partition(log: str) -> tuple[int | None, int, list[str]]:
    """(ops on the GPU, ops on the CPU, refused-op lines) from the GPU log.

    The delegate prints, only when it cannot take everything:
        ERROR: Following operations are not supported by GPU delegate:
        RESHAPE: Tensor dimensions must be less than 5. <node name>
        6 operations will run on the GPU, and the remaining 5 ...
    """
    refused: list[str] = []
    gpu: int | None = None
    cpu, listing = 0, False
    for line in log.splitlines():
        line = line.strip()
        match = _PARTITION.search(line)
        if match:
            gpu, cpu, listing = int(match[1]), int(match[2]), False
        elif _REFUSED_HEADER in line:
            listing = True
        elif listing and re.match(r"^[A-Z][A-Z0-9_]*: ", line):
            refused.append(line)
        else:
            listing = False
    return gpu, cpu, refused


class _CapturedStderr:
    """Collects what native code writes to file descriptor 2.

    LiteRT's accelerators log through C++ to stderr (dozens of INFO lines)
    while the Python exception only says "compiled_model.cc:1036", so the
    reason a GPU is unusable is only in that log.
    """

    def __enter__(self) -> "_CapturedStderr":
        # Python's own buffered stderr text belongs before the redirect
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> Literal[False]:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return False


# LiteRT 2.3's Python TensorBuffer refuses int16 arrays (its dtype table
# has no int16), while its native buffers only copy bytes: an int16 tensor
# (the a16w8 npu artifacts' I/O) travels as a same-width float16 view
_WIRE_TYPES = {np.dtype(np.int16): np.dtype(np.float16)}


def _on_the_wire(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    wire = _WIRE_TYPES.get(x.dtype)
    return x if wire is None else x.view(wire)


class CompiledModelEngine:
    """A LiteRT CompiledModel on one hardware accelerator ("gpu"/"cpu")."""

    def __init__(
        self, model_path: str, accelerator: str, num_threads: int | None = None
    ) -> None:
        self.device: str | None = None
        if accelerator == "gpu":
            # never load the GPU accelerator into this process unless a
            # child process showed that it works (see gpu_probe)
            verdict = gpu_probe.gpu_verdict()
            if not verdict.usable:
                raise DelegateUnavailableError(
                    "LiteRT's GPU accelerator is not usable here (no GPU "
                    f"adapter: {verdict.reason})."
                )
            self.device = verdict.device
        from ai_edge_litert import compiled_model
        from ai_edge_litert.environment import Environment
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        # the GPU keeps the CPU as a fallback for ops it cannot run, as
        # LiteRT recommends; is_fully_accelerated() then tells if any did
        flag = {
            "gpu": HardwareAccelerator.GPU | HardwareAccelerator.CPU,
            "cpu": HardwareAccelerator.CPU,
        }[accelerator]
        options = Options(
            hardware_accelerators=flag,
            cpu_options=CpuOptions(num_threads=num_threads or 0),
        )
        with _CapturedStderr() as captured:
            # our own environment, so a failed one is torn down (and logs
            # its teardown) while stderr is still captured
            failure: RuntimeError | None
            try:
                environment = Environment.create(
                    runtime_path=os.path.dirname(compiled_model.__file__)
                )
            except RuntimeError as exc:
                # no accelerator runtime at all: as unusable as a failed
                # compile, so the caller's fallback applies
                environment, failure = None, exc
            else:
                try:
                    self._model = compiled_model.CompiledModel.from_file(
                        model_path, environment=environment, options=options
                    )
                    failure = None
                except RuntimeError as exc:
                    failure = exc
                    environment.close()
            del environment
        if failure is not None:
            details = "; ".join(_native_errors(captured.text)) or str(failure)
            raise DelegateUnavailableError(
                f"LiteRT's {accelerator.upper()} accelerator could not "
                f"compile the model: {details}."
            ) from failure
        self.fully_delegated: bool | None = bool(
            self._model.is_fully_accelerated()
        )
        # CompiledModel does not list its CPU ops
        self.cpu_ops: list[str] | None = None
        self.fallback_report: str | None = None
        if accelerator == "gpu":
            self._read_gpu_partition(captured.text)

    def _read_gpu_partition(self, log: str) -> None:
        """What the GPU delegate left to the CPU, from its own log.

        `is_fully_accelerated()` counts ops on the CPU accelerator as
        accelerated: a graph whose 5-D RESHAPE/TRANSPOSE ran on XNNPACK
        still reported True. The GPU delegate's log lists the ops it
        refused and how many ops the CPU runs; that is the truth we keep.
        """
        gpu, cpu, refused = _gpu_partition(log)
        self.fully_delegated = bool(self.fully_delegated) and cpu == 0
        self.cpu_ops = [line.split(":")[0] for line in refused]
        if cpu:
            self.fallback_report = (
                f"{gpu} ops run on the GPU and {cpu} on the CPU; the GPU "
                f"refused: {'; '.join(refused) or 'no op named'}"
            )

    def bind(
        self,
        signature_key: str | None,
        input_name: str,
        outputs: Sequence[tuple[str, tuple[int, ...], np.dtype[Any]]],
    ) -> None:
        """`outputs`: [(name, shape, numpy dtype)] in the order to return."""
        model = self._model
        self._key = signature_key
        self._inputs = {
            input_name: model.create_input_buffer_by_name(
                signature_key, input_name
            )
        }
        self._input = self._inputs[input_name]
        self._outputs = {
            name: model.create_output_buffer_by_name(signature_key, name)
            for name, _, _ in outputs
        }
        self._reads = [
            (self._outputs[name], int(np.prod(shape)), np.dtype(dtype), shape)
            for name, shape, dtype in outputs
        ]

    def run(self, x: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        self._input.write(_on_the_wire(x))
        self.invoke()
        return [
            buffer.read(count, _WIRE_TYPES.get(dtype, dtype))
            .view(dtype)
            .reshape(shape)
            for buffer, count, dtype, shape in self._reads
        ]

    def invoke(self) -> None:
        self._model.run_by_name(self._key, self._inputs, self._outputs)
