"""Graphs an interpreter build is known to crash on or compute wrong.

A SIGSEGV inside the interpreter kills the caller's process with no Python
error, and a kernel that ignores per-channel scales returns plausible-
looking garbage, so `EdgeModel` checks for the known cases before the first
invoke and refuses them with a typed error (docs/raspberry_pi.md).
"""

import platform
from typing import Any

import numpy as np

from edge_backbones._compat import litert as litert_compat

__all__ = ["ARM_MACHINES", "per_channel_int8_fcs", "tflite_runtime_fault"]

ARM_MACHINES = ("aarch64", "arm64")


def per_channel_int8_fcs(interpreter: Any) -> tuple[int, int]:
    """(count, count without bias) of int8 FULLY_CONNECTED ops whose
    weights are quantized per channel, in an allocated interpreter."""
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    total = bias_less = 0
    # private: the file lists the same ops (runtime/model_file.py ops and
    # op_io), a public way, but callers hand over only the interpreter
    for op in litert_compat.ops_details(interpreter):
        inputs = [int(i) for i in op["inputs"]]
        if op["op_name"] != "FULLY_CONNECTED":
            continue
        activation, weights = tensors[inputs[0]], tensors[inputs[1]]
        scales = weights["quantization_parameters"]["scales"]
        if np.dtype(activation["dtype"]) == np.int8 and len(scales) > 1:
            total += 1
            bias_less += len(inputs) < 3 or inputs[2] < 0
    return total, bias_less


def tflite_runtime_fault(
    interpreter: Any, portable: bool = False, machine: str | None = None
) -> str | None:
    """Why tflite-runtime 2.14 cannot be trusted with `interpreter`'s graph
    (allocated, never invoked), or None.

    - Its aarch64 build segfaults in the int8 FULLY_CONNECTED kernel when
      the weights are per channel and the op has no bias (its x86-64 build
      runs it). Exports made before edge_backbones added a zero bias to
      those ops (export/fc_bias.py) have them.
    - Its portable reference kernels (`portable=True`) ignore per-channel
      weight scales in int8 FULLY_CONNECTED, on every architecture: the
      outputs are wrong by up to ~230 steps.
    `machine` defaults to this one.
    """
    total, bias_less = per_channel_int8_fcs(interpreter)
    machine = (machine or platform.machine()).lower()
    if total and portable:
        return (
            f"{total} int8 FULLY_CONNECTED op(s) with per-channel weights, "
            "which tflite-runtime 2.14's portable reference kernels compute "
            "wrong (they ignore per-channel scales)"
        )
    if bias_less and machine in ARM_MACHINES:
        return (
            f"{bias_less} int8 FULLY_CONNECTED op(s) with per-channel "
            "weights and no bias, which tflite-runtime 2.14 on aarch64 "
            "crashes on (SIGSEGV)"
        )
    return None
