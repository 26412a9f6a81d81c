"""Which requantization does each machine's int8 FULLY_CONNECTED compute?

Takes two tensor dumps of the same artifact and input (`op_diff.py dump`,
builtin kernels) and one FULLY_CONNECTED op of it, recomputes the op's
int32 accumulators from its int8 input and weights, and requantizes them
two ways TFLite kernels do:
- single rounding: (acc * M + 2^(k-1)) >> k, k = 31 - shift;
- double rounding: round the high half (acc * M + 2^30) >> 31, then a
  rounding shift by -shift (gemmlowp's SaturatingRoundingDoublingHighMul +
  RoundingDivideByPOT, ties upward).
Prints how often each matches each machine's output.

    python benchmarks/pi/rounding.py REF OP_INDEX [--stem S] [--a A --b B]
"""

import argparse
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge_backbones._compat import litert as litert_compat  # noqa: E402
from edge_backbones.runtime import parity  # noqa: E402
from edge_backbones.runtime.backends import load_backend  # noqa: E402


def _quantized_multiplier(real):
    """TFLite's QuantizeMultiplier: real = M * 2^(shift - 31)."""
    fraction, shift = np.frexp(real)
    multiplier = np.round(fraction * 2**31).astype(np.int64)
    carry = multiplier == 2**31
    multiplier[carry] //= 2
    return multiplier, shift.astype(np.int64) + carry


def _single(acc, multiplier, shift):
    total = 31 - shift
    return (acc * multiplier + (np.int64(1) << (total - 1))) >> total


def _double(acc, multiplier, shift):
    high = (acc * multiplier + (np.int64(1) << 30)) >> 31
    right = -shift
    return (high + (np.int64(1) << (right - 1))) >> right


def _accumulators(interpreter, op, dump):
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    x_index, w_index, b_index = (int(i) for i in op["inputs"])
    out_index = int(op["outputs"][0])
    q_in, q_w, q_out = (
        details[i]["quantization_parameters"]
        for i in (x_index, w_index, out_index)
    )
    x = dump[f"t{x_index}"]
    x = x.reshape(-1, x.shape[-1]).astype(np.int64) - q_in["zero_points"][0]
    weights = interpreter.get_tensor(w_index).astype(np.int64)
    acc = x @ (weights - q_w["zero_points"][0]).T
    if b_index >= 0:
        acc += interpreter.get_tensor(b_index).astype(np.int64)
    real = (
        np.float64(q_in["scales"][0])
        * q_w["scales"].astype(np.float64)
        / np.float64(q_out["scales"][0])
    )
    real = np.broadcast_to(real, (acc.shape[1],)).copy()
    return acc, real, int(q_out["zero_points"][0]), out_index


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref", type=pathlib.Path)
    parser.add_argument("op", type=int)
    parser.add_argument("--stem", default="mit_tiny_64x64_npu")
    parser.add_argument("--a", default="x86_builtin")
    parser.add_argument("--b", default="a72_builtin")
    args = parser.parse_args(argv)
    backend = load_backend()
    path = args.ref / "artifacts" / f"{args.stem}.tflite"
    interpreter = backend.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    op = next(
        o for o in litert_compat.ops_details(interpreter)
        if o["index"] == args.op
    )  # fmt: skip
    if op["op_name"] != "FULLY_CONNECTED":
        parser.error(f"op {args.op} is {op['op_name']}, not FULLY_CONNECTED")
    dumps = {
        name: parity.load_arrays(args.ref / f"ops_{name}.npz")
        for name in (args.a, args.b)
    }
    acc, real, zero_point, out_index = _accumulators(
        interpreter, op, dumps[args.a]
    )
    multiplier, shift = _quantized_multiplier(real)
    for label, requantize in (("single", _single), ("double", _double)):
        ours = requantize(acc, multiplier, shift) + zero_point
        ours = np.clip(ours, -128, 127)
        for name, dump in dumps.items():
            theirs = dump[f"t{out_index}"].reshape(ours.shape)
            print(
                f"{label} rounding vs {name}: "
                f"{np.mean(ours != theirs):.2%} of {ours.size} differ"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
