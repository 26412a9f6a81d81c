"""Where do two machines part ways? Every intermediate tensor, op by op.

Runs one artifact with all tensors preserved (the interpreter's builtin
kernels, or its portable reference kernels with --kernels ref; XNNPACK
fuses the graph and keeps no intermediates), saves them, and compares two
saved dumps in execution order: the first ops whose outputs differ are
where the kernels round differently.

    python scripts/pi/op_diff.py dump REF ARTIFACT_STEM NAME [--kernels ref]
    python scripts/pi/op_diff.py diff REF NAME_A NAME_B [--all]
"""

import argparse
import json
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

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
    ops = interpreter._get_ops_details()  # noqa: SLF001 - no public API
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
