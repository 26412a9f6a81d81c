"""Activation ranges from calibration images, by min/max, percentile or MSE.

Runs a float .tflite on the calibration images with every intermediate
tensor kept, and returns `{tensor name: (low, high)}` per float activation
tensor. The quantizer then maps [low, high] onto the integer grid; values
outside are clipped.

- `minmax`: the lowest and highest value seen (what TF's calibrator does).
- `percentile:P`: the (100 - P)th and Pth percentiles of a random sample of
  each tensor's values over all images, widened to the sign of min/max so
  zero stays inside.
- `mse`: of the ranges [a * min, a * max] for a in 0.3..1, the one whose
  8-bit quantization (clip, round, back) has the least squared error on
  the same sample: clipping rare outliers buys a finer step for the rest.
"""

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from edge_backbones.errors import InputError, require

__all__ = ["RANGE_METHODS", "activation_ranges", "parse_method"]

RANGE_METHODS = ("minmax", "percentile:P", "mse")
# values sampled per tensor per image (exact min/max are kept besides)
_SAMPLE = 16384


def parse_method(method: str) -> tuple[str, float | None]:
    """`"percentile:99.99"` -> ("percentile", 99.99); typed error if bad.

    Raises:
        InputError: an unknown method or a bad parameter.
    """
    name, _, arg = str(method).partition(":")
    if name in ("minmax", "mse") and not arg:
        return name, None
    if name == "percentile":
        try:
            value = float(arg)
        except ValueError:
            value = None
        if value is not None and 90.0 < value < 100.0:
            return name, value
    raise InputError(
        f"Activation range method {method!r} is not known; use one of "
        f"{list(RANGE_METHODS)} with P in (90, 100), e.g. percentile:99.99."
    )


def activation_ranges(
    float_model: bytes,
    samples: Iterable[npt.NDArray[Any]],
    names: Iterable[str],
    method: str = "minmax",
    bits: int = 8,
) -> dict[str, tuple[float, float]]:
    """`{tensor name: (low, high)}` for the float activations `names`.

    Args:
        float_model: .tflite bytes of the float graph.
        samples: input arrays (each with its batch axis), fed in order.
        names: the tensors to range (those the quantizer calibrates).
        method: see the module docstring.
        bits: the activation width the ranges are chosen for (mse).
    """
    name, percent = parse_method(method)
    stats, inputs = _collect(float_model, samples, set(names))
    ranges = {}
    for tensor, (low, high, values) in stats.items():
        # graph inputs keep their exact range: a uint8 input of raw pixels
        # must map 0..255 one to one
        if name == "minmax" or values.size == 0 or tensor in inputs:
            ranges[tensor] = (low, high)
        elif name == "percentile" and percent is not None:
            lo, hi = np.percentile(values, [100.0 - percent, percent])
            ranges[tensor] = (min(float(lo), 0.0), max(float(hi), 0.0))
        else:
            ranges[tensor] = _mse_range(values, low, high, bits)
    return ranges


def _collect(float_model, samples, names, seed=0):
    """Per tensor: exact min, exact max, and a random sample of values;
    and the names of the graph's inputs."""
    litert = require("ai_edge_litert.interpreter", "export")
    interpreter = litert.Interpreter(
        model_content=bytes(float_model),
        experimental_preserve_all_tensors=True,
        num_threads=2,
    )
    interpreter.allocate_tensors()
    details = [
        d for d in interpreter.get_tensor_details() if d["name"] in names
    ]
    (entry,) = interpreter.get_input_details()
    rng = np.random.default_rng(seed)
    found = {}
    for sample in samples:
        interpreter.set_tensor(entry["index"], sample)
        interpreter.invoke()
        for detail in details:
            if detail["dtype"] != np.float32:
                continue
            try:
                value = interpreter.get_tensor(detail["index"]).ravel()
            except ValueError:  # freed or never written
                continue
            if value.size == 0:
                continue
            low, high, parts = found.get(detail["name"], (np.inf, -np.inf, []))
            pick = value
            if value.size > _SAMPLE:
                pick = value[rng.integers(0, value.size, _SAMPLE)]
            parts.append(pick.astype(np.float32))
            found[detail["name"]] = (
                min(low, float(value.min())),
                max(high, float(value.max())),
                parts,
            )
    stats = {
        name: (low, high, np.concatenate(parts))
        for name, (low, high, parts) in found.items()
    }
    return stats, {entry["name"]}


def _mse_range(values, low, high, bits):
    levels = 2**bits - 1
    best, best_error = (low, high), np.inf
    for ratio in np.linspace(0.3, 1.0, 36):
        lo, hi = min(low * ratio, 0.0), max(high * ratio, 0.0)
        if hi - lo <= 0:
            continue
        step = (hi - lo) / levels
        grid = np.round((np.clip(values, lo, hi) - lo) / step)
        error = float(np.mean((grid * step + lo - values) ** 2))
        if error < best_error:
            best, best_error = (float(lo), float(hi)), error
    return best


def override_calibrated(calibrated, samples, method):
    """TF's calibrated model (`convert.Converter.calibrated`) with the
    min/max it recorded per activation replaced by `method`'s ranges.

    The MLIR quantizer reads each tensor's range from these fields, so
    the ranges pick the int8 scales of every quantized variant.
    """
    require("tensorflow", "export")
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(calibrated)
    ranged = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            quant = tensor.quantization
            if quant is not None and quant.min is not None and len(quant.min):
                ranged[_name(tensor.name)] = quant
    found = activation_ranges(calibrated, samples, list(ranged), method)
    for name, (low, high) in found.items():
        if len(ranged[name].min) == 1:  # per-tensor activation ranges only
            ranged[name].min = [low]
            ranged[name].max = [high]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(raw):
    return raw.decode() if isinstance(raw, bytes) else raw
