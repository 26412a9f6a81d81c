"""Graphs an interpreter build is known to crash on, found before invoke.

A SIGSEGV inside the interpreter kills the caller's process with no Python
error, so `EdgeModel` checks for the few kernels known to crash and refuses
the model with a typed error instead (docs/raspberry_pi.md).
"""

import platform

import numpy as np

__all__ = ["ARM_MACHINES", "tflite_runtime_crash"]

ARM_MACHINES = ("aarch64", "arm64")


def tflite_runtime_crash(interpreter, machine=None):
    """Why tflite-runtime would crash invoking `interpreter`'s graph, or
    None.

    tflite-runtime 2.14's aarch64 build (its last release) segfaults in
    the int8 FULLY_CONNECTED kernel when the weights are quantized per
    channel and the op has no bias (its x86-64 build runs it). Exports made
    before edge_backbones added a zero bias to those ops
    (export/fc_bias.py) have them. `interpreter` is allocated, never
    invoked; `machine` defaults to this one.
    """
    machine = machine or platform.machine()
    if machine.lower() not in ARM_MACHINES:
        return None
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    bias_less = 0
    for op in interpreter._get_ops_details():  # noqa: SLF001 - no public API
        inputs = [int(i) for i in op["inputs"]]
        if op["op_name"] != "FULLY_CONNECTED" or (
            len(inputs) > 2 and inputs[2] >= 0
        ):
            continue
        activation, weights = tensors[inputs[0]], tensors[inputs[1]]
        scales = weights["quantization_parameters"]["scales"]
        if np.dtype(activation["dtype"]) == np.int8 and len(scales) > 1:
            bias_less += 1
    if not bias_less:
        return None
    return (
        f"{bias_less} int8 FULLY_CONNECTED op(s) with per-channel weights "
        "and no bias, which tflite-runtime 2.14 on aarch64 crashes on "
        "(SIGSEGV)"
    )
