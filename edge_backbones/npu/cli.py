"""`edge-backbones compile`: ahead-of-time NPU compile of an artifact.

Imports nothing heavy at import time (see edge_backbones/cli.py).
"""

import os
import sys
from typing import Any

from edge_backbones import native_logs

__all__ = ["add_parsers"]


def _compile(args):
    from edge_backbones.npu.compile import (
        compile_artifact,
        format_table,
        update_compiled,
    )
    from edge_backbones.npu.verify import check_numerics

    out = args.out or os.path.join(os.path.dirname(args.model) or ".", "npu")
    results = compile_artifact(args.model, args.soc, out, log=_note)
    print(format_table(results))
    for result in results if args.images else ():
        check = check_numerics(
            result.path, args.model, args.images, args.max_images
        )
        update_compiled(result.path, {"numerics_vs_cpu": check.record()})
        print(check.summary())
    return 0


def _note(message):
    print(f"note: {message}", file=sys.stderr)


def add_parsers(subparsers: Any) -> None:
    """Adds the command's subcommands to the `edge-backbones` parsers."""
    parser = subparsers.add_parser(
        "compile",
        help="compile an exported artifact ahead of time for NPUs",
        description="Compiles an exported .tflite (best: --target npu) with "
        "LiteRT's vendor compiler plugins, one file per SoC, and prints how "
        "many ops each NPU takes. Qualcomm SoCs use QAIRT from the "
        "onnxruntime-qnn wheel; --soc intel-cpu uses OpenVINO's CPU device. "
        'Needs: pip install "edge-backbones[npu]".',
    )
    parser.add_argument("model", help="the exported .tflite")
    parser.add_argument(
        "--soc",
        required=True,
        help="comma-separated SoCs, e.g. SM8650,SM8750 or intel-cpu",
    )
    parser.add_argument(
        "--out", help="output folder (default: npu/ beside the model)"
    )
    parser.add_argument(
        "--images",
        help="photos to compare the compiled model, run in the vendor's x86 "
        "simulation, with the source artifact on LiteRT's CPU",
    )
    parser.add_argument("--max-images", type=int, default=4)
    native_logs.add_verbose_argument(parser)
    parser.set_defaults(func=_compile)
