"""Runs the x86-exported artifacts here and compares them with x86.

Runtime only (numpy + a TFLite interpreter), so it runs inside the
emulated Pi as on a real one. REF is the folder `make_artifacts.py` wrote.

    python benchmarks/pi/compare.py run REF NAME [--backend tflite_runtime]
        runs every artifact through XNNPACK, the builtin kernels and the
        portable reference kernels (or --delegates xnnpack,cpu), saves
        REF/NAME.npz + .json, prints the comparison with REF/x86 (with
        REF/x86_tflite_runtime for --backend tflite_runtime) and exits 1 if
        any output is out of bounds (runtime.parity.verdict)
    python benchmarks/pi/compare.py record REF NAME [--backend ...]
        only runs and saves (e.g. the x86 tflite-runtime reference)
    python benchmarks/pi/compare.py table REF NAME... [--out FILE.md]
        the Markdown table of several saved runs against x86
"""

import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from edge_backbones.atomic_io import write_file_atomic  # noqa: E402
from edge_backbones.runtime import parity  # noqa: E402

HEADER = (
    "| model | mode | CPU | backend | delegate | exact | max diff "
    "| cosine vs x86 | fidelity on ARM | fidelity on x86 | bound |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def _fmt_diff(figures):
    worst = max(figures.values(), key=lambda f: f["max_abs"])
    if worst["max_steps"] is not None:
        return f"{worst['max_steps']} steps"
    return f"{worst['max_relative']:.1e} rel"


def _fidelity(figures, key):
    values = [f[key] for f in figures.values() if key in f]
    return f"{min(values):.5f}" if values else "(reference)"


def reference_name(backend):
    """The x86 run a device run is compared with: the same interpreter
    package (tflite-runtime 2.14 and LiteRT 2.3 have different kernels)."""
    return "x86" if backend in (None, "litert") else f"x86_{backend}"


def table_rows(ref, name):
    device = parity.load_run(ref, name)
    x86 = parity.load_run(ref, reference_name(device["info"]["backend"]))
    rows = parity.compare(x86, device)
    info = device["info"]
    cpu = info["arch"]
    if info["emulated"]:
        cpu = f"{info['emulated'].split()[-1]} (qemu)"
    backend = f"{info['backend']} {info['backend_version']}"
    lines = []
    for row in rows:
        levels = row["levels"]
        exact = all(f["exact"] for f in levels.values())
        lines.append(
            f"| {row['model']} | {row['mode']} | {cpu} | {backend} "
            f"| {row['delegate']} | {'yes' if exact else 'no'} "
            f"| {'0' if exact else _fmt_diff(levels)} "
            f"| {min(f['cosine'] for f in levels.values()):.6f} "
            f"| {_fidelity(levels, 'fidelity')} "
            f"| {_fidelity(levels, 'reference_fidelity')} "
            f"| {parity.verdict(row)[0]} |"
        )
    for stem, reason in info.get("unloadable", {}).items():
        model, mode = stem.rsplit("_", 2)[0], stem.rsplit("_", 1)[1]
        why = reason.split(":", 2)[-1].split(".")[0].strip()
        lines.append(
            f"| {model} | {mode} | {cpu} | {backend} | - | cannot load "
            f"| - | - | - | - | {why} |"
        )
    return rows, lines


def record(args):
    inputs = parity.load_arrays(args.ref / "inputs.npz")
    paths = sorted(str(p) for p in (args.ref / "artifacts").glob("*.tflite"))
    result = parity.run_artifacts(
        paths, inputs, backend=args.backend, delegates=args.delegates
    )
    parity.save_run(args.ref, args.name, result)
    return 0


def run(args):
    record(args)
    rows, lines = table_rows(args.ref, args.name)
    print("\n".join([HEADER, *lines]))
    write_file_atomic(
        str(args.ref / f"{args.name}_vs_x86.json"),
        json.dumps(rows, indent=1) + "\n",
    )
    problems = [p for row in rows for p in parity.verdict(row)[1]]
    for problem in problems:
        print(f"OUT OF BOUNDS: {problem}", file=sys.stderr)
    return 1 if problems else 0


def table(args):
    lines = [HEADER]
    for name in args.names:
        lines += table_rows(args.ref, name)[1]
    text = "\n".join(lines) + "\n"
    if args.out:
        write_file_atomic(str(args.out), text)
    print(text, end="")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, func in (("run", run), ("record", record)):
        run_parser = commands.add_parser(command)
        run_parser.add_argument("ref", type=pathlib.Path)
        run_parser.add_argument("name")
        run_parser.add_argument("--backend", default=None)
        run_parser.add_argument(
            "--delegates",
            type=lambda text: tuple(text.split(",")),
            default=parity.DELEGATES,
            help="comma list (default: %(default)s); 'portable' is slow",
        )
        run_parser.set_defaults(func=func)
    table_parser = commands.add_parser("table")
    table_parser.add_argument("ref", type=pathlib.Path)
    table_parser.add_argument("names", nargs="+")
    table_parser.add_argument("--out", type=pathlib.Path)
    table_parser.set_defaults(func=table)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
