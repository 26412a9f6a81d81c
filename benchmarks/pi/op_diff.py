"""Where do two machines part ways? Every intermediate tensor, op by op.

Runs one artifact with all tensors preserved (the interpreter's builtin
kernels, or its portable reference kernels with --kernels ref; XNNPACK
fuses the graph and keeps no intermediates), saves them, and compares two
saved dumps in execution order: the first ops whose outputs differ are
where the kernels round differently.

    python benchmarks/pi/op_diff.py dump REF ARTIFACT_STEM NAME [--kernels ref]
    python benchmarks/pi/op_diff.py diff REF NAME_A NAME_B [--all]
    python benchmarks/pi/op_diff.py growth REF ARTIFACT_STEM NAME_A NAME_B
        per op kind, how much an op grows the difference it is fed: the
        relative difference (dequantized) of its output over the largest
        of its inputs', median and max over the graph's ops
    python benchmarks/pi/op_diff.py cut REF ARTIFACT_STEM NAME T1,T2,...
        XNNPACK keeps no intermediates, so the graph is cut instead: one
        copy per tensor index T whose only output is T, run with XNNPACK;
        saved as a dump `diff` compares (tensor indices from `dump`)
"""

import argparse
import json
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge_backbones._compat import litert as litert_compat  # noqa: E402
from edge_backbones.runtime import parity  # noqa: E402
from edge_backbones.runtime.backends import load_backend  # noqa: E402
from edge_backbones.runtime.edge_model import EdgeModel  # noqa: E402

_RESOLVERS = {
    "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
    "ref": "BUILTIN_REF",
}


def dump(args):
    path = args.ref / "artifacts" / f"{args.stem}.tflite"
    model = EdgeModel(path, ("cpu",), num_threads=1)
    x = parity.load_arrays(args.ref / "inputs.npz")[
        model.metadata["model"]["name"]
    ][args.image]
    x = model._to_input(x)  # noqa: SLF001 - the exact bytes the model takes
    backend = load_backend(args.backend)
    interpreter = backend.Interpreter(
        model_path=str(path),
        num_threads=1,
        experimental_op_resolver_type=getattr(
            backend.OpResolverType, _RESOLVERS[args.kernels]
        ),
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    ops = litert_compat.ops_details(interpreter)
    tensors, order = {}, []
    for op in ops:
        for index in op["outputs"]:
            tensors[f"t{index}"] = interpreter.get_tensor(int(index))
        order.append(
            {"op": op["op_name"], "index": op["index"],
             "outputs": [int(i) for i in op["outputs"]]}
        )  # fmt: skip
    parity.save_arrays(args.ref / f"ops_{args.name}.npz", tensors)
    (args.ref / f"ops_{args.name}.json").write_text(json.dumps(order))
    return 0


def _input(ref, path):
    model = EdgeModel(path, ("cpu",), num_threads=1)
    x = parity.load_arrays(ref / "inputs.npz")[model.metadata["model"]["name"]]
    return model._to_input(x[0])  # noqa: SLF001 - the exact input bytes


def _cut(content, tensor):
    """The model in `content` with tensor `tensor` as its only output."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(content)
    model.subgraphs[0].outputs = [tensor]
    model.signatureDefs = []
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def cut(args):
    path = args.ref / "artifacts" / f"{args.stem}.tflite"
    x = _input(args.ref, path)
    backend = load_backend(args.backend)
    tensors, order = {}, []
    for tensor in (int(t) for t in args.tensors.split(",")):
        cut_path = args.ref / f"cut_{args.stem}_{tensor}.tflite"
        if not cut_path.exists():  # made on the host: the device has no
            cut_path.write_bytes(_cut(path.read_bytes(), tensor))  # tools
        interpreter = backend.Interpreter(
            model_path=str(cut_path), num_threads=1
        )
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        tensors[f"t{tensor}"] = interpreter.get_tensor(
            interpreter.get_output_details()[0]["index"]
        )
        order.append({"op": "cut", "index": tensor, "outputs": [tensor]})
    parity.save_arrays(args.ref / f"ops_{args.name}.npz", tensors)
    (args.ref / f"ops_{args.name}.json").write_text(json.dumps(order))
    return 0


def diff(args):
    order = json.loads((args.ref / f"ops_{args.a}.json").read_text())
    a = parity.load_arrays(args.ref / f"ops_{args.a}.npz")
    b = parity.load_arrays(args.ref / f"ops_{args.b}.npz")
    differing = 0
    for op in order:
        for index in op["outputs"]:
            x, y = a[f"t{index}"], b[f"t{index}"]
            if np.array_equal(x, y):
                continue
            differing += 1
            delta = np.abs(x.astype(np.float64) - y.astype(np.float64))
            if args.all or differing <= args.first:
                print(
                    f"op {op['index']:4d} {op['op']:<22} tensor {index:4d} "
                    f"{x.dtype} {tuple(x.shape)}: {np.mean(delta > 0):6.1%} "
                    f"differ, max {delta.max():g}"
                )
    total = sum(len(op["outputs"]) for op in order)
    print(f"{differing} of {total} op outputs differ")
    return 0


def _relative_differences(interpreter, a, b):
    """{tensor index: ||a - b|| / ||b||} of the dumped tensors, dequantized
    with their (per-tensor) scales."""
    differences = {}
    for detail in interpreter.get_tensor_details():
        key = f"t{detail['index']}"
        if key not in a:
            continue
        scales = detail["quantization_parameters"]["scales"]
        zero = detail["quantization_parameters"]["zero_points"]
        x, y = (v.astype(np.float64) for v in (a[key], b[key]))
        if len(scales) == 1:
            x, y = (x - zero[0]) * scales[0], (y - zero[0]) * scales[0]
        norm = np.linalg.norm(y)
        differences[detail["index"]] = (
            float(np.linalg.norm(x - y) / norm) if norm else 0.0
        )
    return differences


def growth(args):
    path = args.ref / "artifacts" / f"{args.stem}.tflite"
    backend = load_backend(args.backend)
    interpreter = backend.Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=getattr(
            backend.OpResolverType, _RESOLVERS["builtin"]
        ),
    )  # no delegate nodes: the ops as dumped
    interpreter.allocate_tensors()
    a = parity.load_arrays(args.ref / f"ops_{args.a}.npz")
    b = parity.load_arrays(args.ref / f"ops_{args.b}.npz")
    differences = _relative_differences(interpreter, a, b)
    ratios = {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - no public API
        fed = [differences.get(int(i), 0.0) for i in op["inputs"] if i >= 0]
        if max(fed, default=0.0) == 0.0:
            continue  # a difference born here, or none: nothing to grow
        out = differences.get(int(op["outputs"][0]), 0.0)
        ratios.setdefault(op["op_name"], []).append(out / max(fed))
    print(f"{'op':<22} {'ops':>4} {'median':>7} {'max':>7}")
    for name, values in sorted(
        ratios.items(), key=lambda kv: -np.median(kv[1])
    ):
        print(
            f"{name:<22} {len(values):4d} {np.median(values):7.2f} "
            f"{max(values):7.2f}"
        )
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dump_parser = commands.add_parser("dump")
    dump_parser.add_argument("ref", type=pathlib.Path)
    dump_parser.add_argument("stem")
    dump_parser.add_argument("name")
    dump_parser.add_argument("--kernels", choices=_RESOLVERS, default="builtin")
    dump_parser.add_argument("--backend", default=None)
    dump_parser.add_argument("--image", type=int, default=0)
    dump_parser.set_defaults(func=dump)
    cut_parser = commands.add_parser("cut")
    cut_parser.add_argument("ref", type=pathlib.Path)
    cut_parser.add_argument("stem")
    cut_parser.add_argument("name")
    cut_parser.add_argument("tensors")
    cut_parser.add_argument("--backend", default=None)
    cut_parser.set_defaults(func=cut)
    growth_parser = commands.add_parser("growth")
    growth_parser.add_argument("ref", type=pathlib.Path)
    growth_parser.add_argument("stem")
    growth_parser.add_argument("a")
    growth_parser.add_argument("b")
    growth_parser.add_argument("--backend", default=None)
    growth_parser.set_defaults(func=growth)
    diff_parser = commands.add_parser("diff")
    diff_parser.add_argument("ref", type=pathlib.Path)
    diff_parser.add_argument("a")
    diff_parser.add_argument("b")
    diff_parser.add_argument("--first", type=int, default=12)
    diff_parser.add_argument("--all", action="store_true")
    diff_parser.set_defaults(func=diff)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
