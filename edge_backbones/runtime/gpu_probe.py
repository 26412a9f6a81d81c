"""Is LiteRT's GPU accelerator usable here? Asked once, in a child process.

Why a child process: LiteRT's GPU accelerator (WebGPU over Vulkan) loads
the Vulkan loader and driver into the process that tries it. When the
driver cannot serve it (Debian 12's lavapipe lacks
`shaderUniform*ArrayDynamicIndexing`, so "No adapters found"), LiteRT
falls back cleanly, but with TensorFlow loaded in the same process its
accelerator teardown then aborts the interpreter at exit
(`free(): invalid pointer`, exit 134). Nothing Python can catch, and a
hang in a driver would be as bad. So a short-lived child creates the
accelerator and runs a one-op graph on it (with a timeout), and only a
process whose probe succeeded ever loads the accelerator itself. The
child exits normally, so an accelerator teardown that aborts it fails the
probe too (SwiftShader tears down cleanly with TensorFlow loaded).

The child loads what the caller has loaded that is known to clash: when
TensorFlow is imported here, the child imports it too before it tries the
GPU. Mesa 25's lavapipe runs the accelerator in a TensorFlow-free process
but segfaults while compiling shaders in one with TensorFlow loaded (both
bring their own LLVM), so a TensorFlow-free probe would pass a driver that
then kills the caller.

The verdict is cached per process, keyed by the environment variables
that choose the Vulkan driver and by whether TensorFlow is loaded, so each
process pays for one probe (about two seconds; more with TensorFlow).
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
from typing import Any

__all__ = ["GpuVerdict", "gpu_verdict", "clear_cache", "PROBE_TIMEOUT_S"]

# generous: importing TensorFlow and a cold start of a software driver on
# a busy machine
PROBE_TIMEOUT_S = 120.0
_TIMEOUT_VARIABLE = "EDGE_BACKBONES_GPU_PROBE_TIMEOUT"
_ENV_NAMES = ("LD_LIBRARY_PATH", "XDG_DATA_DIRS", "XDG_CONFIG_DIRS", "HOME")
_ADAPTER = re.compile(
    r"Selected adapter: (?P<name>.*?), arch=.*adapterType=(?P<type>[^,\n]*)"
)
# what Dawn and LiteRT log when there is no adapter; the rest is INFO noise
_REASON = re.compile(
    r"^(?:E\d{4} [\d:.]+\s+\d+ \S+\] |ERROR: (?:\[[^\]]*\] )?|Warning: )"
    r"(?P<text>.+)$"
)
# (TensorFlow loaded, the Vulkan environment) -> verdict
_cache: dict[tuple[bool, tuple[tuple[str, str], ...]], "GpuVerdict"] = {}
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class GpuVerdict:
    """What the probe found: usable or not, on which adapter, and why."""

    usable: bool
    reason: str  # why not usable; "" when usable
    adapter: str | None = None  # e.g. "SwiftShader Device (Subzero)"
    software: bool | None = None  # True for a CPU/software driver

    @property
    def device(self) -> str | None:
        """The adapter's name, marked when it is a software driver."""
        if self.adapter is None:
            return None
        return self.adapter + (" (software Vulkan)" if self.software else "")


def _tensorflow_loaded() -> bool:
    return "tensorflow" in sys.modules


def _cache_key() -> tuple[bool, tuple[tuple[str, str], ...]]:
    return _tensorflow_loaded(), tuple(
        sorted(
            (name, value)
            for name, value in os.environ.items()
            if name.startswith("VK_") or name in _ENV_NAMES
        )
    )


def gpu_verdict() -> GpuVerdict:
    """The GpuVerdict for this process's environment (probed once).

    Raises:
        InputError: EDGE_BACKBONES_GPU_PROBE_TIMEOUT is not a positive
            number of seconds.
    """
    key = _cache_key()
    with _lock:
        if key not in _cache:
            _cache[key] = _probe()
        return _cache[key]


def clear_cache() -> None:
    """Forgets every verdict (after installing a driver, in tests)."""
    with _lock:
        _cache.clear()


def _timeout_s() -> float:
    text = os.environ.get(_TIMEOUT_VARIABLE)
    if text is None:
        return PROBE_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:  # also NaN
        from edge_backbones.errors import InputError

        raise InputError(
            f"{_TIMEOUT_VARIABLE}={text!r} is not a number of seconds; set "
            f"it to e.g. 120, or unset it for {PROBE_TIMEOUT_S:g}."
        )
    return seconds


def _probe() -> GpuVerdict:
    timeout = _timeout_s()
    package_root = os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    code = (
        f"import sys; sys.path.insert(0, {package_root!r}); "
        + ("import tensorflow; " if _tensorflow_loaded() else "")
        + "from edge_backbones.runtime.gpu_probe import _child_main; "
        "_child_main()"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return GpuVerdict(
            False,
            f"the GPU probe did not finish in {timeout:g} s (set "
            f"{_TIMEOUT_VARIABLE} to wait longer)",
        )
    return _read_verdict(
        result.returncode,
        result.stdout,
        result.stderr,
        with_tensorflow=_tensorflow_loaded(),
    )


def _read_verdict(
    returncode: int, stdout: str, stderr: str, with_tensorflow: bool = False
) -> GpuVerdict:
    """The child's output -> GpuVerdict; a crash is a verdict too."""
    adapter = _ADAPTER.search(stderr)
    name, software = None, None
    if adapter:
        name = adapter["name"].strip()
        software = "software" in adapter["type"].lower()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    found = json.loads(lines[-1]) if lines else None
    if found is not None and not found["usable"]:
        # the child's own reason, even if its teardown then aborted
        reason = str(found["reason"])
        if found.get("native"):
            reason = "; ".join(_reasons(stderr)) or reason
        return GpuVerdict(False, reason, name, software)
    if found is not None and returncode == 0:
        return GpuVerdict(True, "", name, software)
    how = f"exit code {returncode}"
    if returncode < 0:
        how = f"signal {-returncode}, {_signal_name(-returncode)}"
    if with_tensorflow:
        how += ", with TensorFlow loaded as in this process"
    reasons = _reasons(stderr) or [stderr.strip()[-300:] or "no output"]
    return GpuVerdict(
        False,
        f"the GPU probe process died ({how}); its log: " + "; ".join(reasons),
        name,
        software,
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _reasons(log: str) -> list[str]:
    """The error lines of LiteRT's and Dawn's native log, in order, once."""
    reasons: list[str] = []
    for line in log.splitlines():
        match = _REASON.match(line.strip())
        if match and match["text"] not in reasons:
            reasons.append(match["text"].strip())
    return reasons


def _probe_model() -> bytes:
    """A one-op graph (y = x + x on 1x2x2x4 float32) as .tflite bytes."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    def tensor(name: str, buffer: int) -> Any:
        t = schema.TensorT()
        t.name, t.buffer, t.type = name, buffer, schema.TensorType.FLOAT32
        t.shape = np.array([1, 2, 2, 4], np.int32)
        return t

    def io_map(name: str, index: int) -> Any:
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, index
        return entry

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    code.version = 1
    op = schema.OperatorT()
    op.opcodeIndex = 0
    op.inputs = np.array([0, 0], np.int32)
    op.outputs = np.array([1], np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.AddOptions
    op.builtinOptions = schema.AddOptionsT()
    graph = schema.SubGraphT()
    graph.tensors = [tensor("x", 1), tensor("y", 2)]
    graph.inputs = np.array([0], np.int32)
    graph.outputs = np.array([1], np.int32)
    graph.operators = [op]
    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs, signature.outputs = [io_map("x", 0)], [io_map("y", 1)]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [schema.BufferT() for _ in range(3)]
    model.signatureDefs = [signature]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _run_on_gpu() -> tuple[bool, str]:
    """Runs the probe graph on the GPU alone; returns (usable, reason)."""
    import numpy as np
    from ai_edge_litert import compiled_model
    from ai_edge_litert.environment import Environment
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import Options

    environment = Environment.create(
        runtime_path=os.path.dirname(compiled_model.__file__)
    )
    # GPU only: a CPU fallback must not pass for a working GPU
    model = compiled_model.CompiledModel.from_buffer(
        _probe_model(),
        environment=environment,
        options=Options(hardware_accelerators=HardwareAccelerator.GPU),
    )
    if not model.is_fully_accelerated():
        return False, "the GPU accelerator did not take a one-op graph"
    key = "serving_default"
    inputs = {"x": model.create_input_buffer_by_name(key, "x")}
    outputs = {"y": model.create_output_buffer_by_name(key, "y")}
    x = np.arange(16, dtype=np.float32)
    inputs["x"].write(x)
    model.run_by_name(key, inputs, outputs)
    y = outputs["y"].read(16, np.float32)
    if not np.array_equal(y, 2 * x):
        return False, f"the GPU computed {y[:4]} for x + x with x = {x[:4]}"
    return True, ""


def _child_main() -> None:
    """The probe process: prints one JSON line, then exits normally."""
    native = False
    try:
        usable, reason = _run_on_gpu()
    except ImportError as exc:
        usable, reason = False, f"LiteRT is not installed ({exc})"
    except RuntimeError as exc:
        # LiteRT's exception names a source line; the reason is in the
        # native log on stderr, which the parent reads
        usable, reason, native = False, str(exc).strip(), True
    verdict = {"usable": usable, "reason": reason, "native": native}
    print(json.dumps(verdict, allow_nan=False))
    sys.stdout.flush()
    # the interpreter's normal exit follows on purpose: an accelerator
    # teardown that aborts (exit 134) makes the parent's verdict a no
