"""`edge-backbones report` (measure one device) and `report merge` (render
several devices' results as one report). Imports nothing heavy until run."""

import argparse
import os
import platform
import shlex
import sys
from collections.abc import Iterable
from typing import Any

from edge_backbones.runtime.cli import thread_counts

__all__ = ["add_parsers", "check_out_folder"]


def _count(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r}: give a whole number >= {minimum}."
            )
        return value

    return parse


def _command_line():
    return shlex.join(["edge-backbones", *sys.argv[1:]])


def check_out_folder(out: str, inputs: Iterable[str] = ()) -> None:
    """Raises InputError unless `out` can be (or is) a writable folder that
    is none of the `inputs` files; checked before any work is done.

    Raises:
        InputError: `out` is a file, one of `inputs`, or not writable.
    """
    from edge_backbones.errors import InputError

    out_real = os.path.realpath(out)
    for path in inputs:
        if os.path.realpath(path) == out_real:
            raise InputError(
                f"--out {out!r} is one of the input files; --out is the "
                "folder the report is written to. Pass a folder, e.g. "
                f"--out {os.path.join(os.path.dirname(out) or '.', 'merged')}."
            )
    existing = out_real
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing == out_real and not os.path.isdir(out_real):
        raise InputError(
            f"--out {out!r} is a file, not a folder. Pass a folder to write "
            "the report into (it is created if missing)."
        )
    if not os.path.isdir(existing):
        raise InputError(
            f"--out {out!r} cannot be created: {existing!r} is a file. Pass "
            "another folder."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"--out {out!r}: {existing!r} is not writable by this user. "
            "Pass a folder you can write to."
        )


def _render(paths, out, min_cos, figure_optional=False):
    from edge_backbones.errors import MissingDependencyError
    from edge_backbones.report.merge import load_and_merge
    from edge_backbones.report.render import write_report

    check_out_folder(out, paths)
    merged = load_and_merge(paths, min_cos)
    try:
        written = write_report(merged, out)
    except MissingDependencyError as exc:
        if not figure_optional:
            raise
        # a device with only the runtime still gets its tables
        print(f"report: no figure: {exc}", file=sys.stderr)
        written = write_report(merged, out, figure=False)
    for path in written.values():
        print(path)
    return 0


def _run_report(args):
    from edge_backbones.report import collect
    from edge_backbones.report.merge import check_min_cos

    if args.recipe is None and args.artifacts is None:
        print(
            "edge-backbones report: give --recipe export/<name>.toml (export,"
            " then time) or --artifacts DIR (time exported .tflite files), "
            "or use `edge-backbones report merge a.json b.json --out DIR`.",
            file=sys.stderr,
        )
        return 2
    # before the timing, not after it: the budget and the folder are only
    # used once the rows are measured
    check_min_cos(args.min_cos)
    check_out_folder(args.out)
    common = {
        "out": args.out,
        "device_name": args.device_name,
        "threads": args.threads,
        "runs": args.runs,
        "warmup": args.warmup,
        "resume": args.resume,
        "command": _command_line(),
    }
    from edge_backbones.errors import ReportError

    if args.cluster is not None:
        return _run_on_cluster(args, common)
    try:
        if args.artifacts is not None:
            result = collect.collect_artifacts(
                args.artifacts, gpu=args.gpu, **common
            )
        else:
            result = collect.collect_recipe(args.recipe, **common)
    except ReportError as exc:
        # the rows that were measured still make a report, which lists
        # the failed ones; the command still fails
        if getattr(exc, "result_path", None) is None:
            raise
        _render([exc.result_path], args.out, args.min_cos, True)
        raise
    print(result)
    return _render([result], args.out, args.min_cos, figure_optional=True)


def _run_on_cluster(args, common):
    from edge_backbones.errors import ClusterError, InputError, ReportError
    from edge_backbones.report import cluster

    if args.recipe is None:
        raise InputError(
            "--cluster runs a recipe's exports and timing rows on a Ray "
            "cluster; give --recipe FILE. To time exported files on one "
            "device, run `report --artifacts DIR` there."
        )
    try:
        paths = cluster.collect_recipe(
            args.recipe,
            cluster=args.cluster,
            device_timeout=args.device_timeout,
            **common,
        )
    except (ClusterError, ReportError) as exc:
        # the devices that were measured still make a report
        if getattr(exc, "result_paths", None):
            _render(exc.result_paths, args.out, args.min_cos, True)
        raise
    for path in paths:
        print(path)
    return _render(paths, args.out, args.min_cos, figure_optional=True)


def add_parsers(subparsers: Any) -> None:
    """Adds `report` (and its `merge` action) to the command's parsers."""
    report = _add_report_parser(subparsers)
    actions = report.add_subparsers(dest="report_action")
    merge = actions.add_parser(
        "merge",
        help="render several devices' result JSON files as one report",
    )
    merge.add_argument("results", nargs="+", help="<device>.json files")
    merge.add_argument(
        "--out", default="reports", help="folder for the merged report"
    )
    _add_min_cos(merge)
    merge.set_defaults(
        func=lambda args: _render(args.results, args.out, args.min_cos)
    )


def _add_report_parser(subparsers):
    report = subparsers.add_parser(
        "report",
        help="time models on this device: latency, size, memory, fidelity",
        description=(
            "Times each model x mode x thread count on this device and "
            "writes <out>/<device-name>.json (row by row, so an interrupted "
            "run keeps its rows; --resume skips them), then renders "
            "report.md/.html/.csv and pareto.png. `report merge` renders "
            "several devices' JSON files as one report."
        ),
    )
    source = report.add_mutually_exclusive_group()
    source.add_argument(
        "--recipe",
        help="export recipe (export/<name>.toml; several [[model]] tables "
        "for several models): export, then time, with the Keras float model "
        "on TensorFlow as a baseline",
    )
    source.add_argument(
        "--artifacts",
        help="folder of exported .tflite files to time (runtime only: no "
        "TensorFlow; fidelity comes from their metadata)",
    )
    report.add_argument(
        "--device-name",
        default=platform.node() or "this-device",
        help="names this device in the report (default: the host name)",
    )
    report.add_argument(
        "--out", default="reports", help="folder for the JSON and report"
    )
    _add_timing_options(report)
    report.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows already in <out>/<device-name>.json and skip them",
    )
    report.add_argument(
        "--gpu",
        action="store_true",
        help="with --artifacts: also run each gpu artifact on LiteRT's GPU "
        "accelerator; the row names the adapter, and a software Vulkan "
        "driver's timing is marked software, never shown as a GPU speed",
    )
    report.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="with --recipe: run the exports and the timing rows as Ray "
        "tasks (pip install 'edge-backbones[cluster]'): auto (the cluster "
        "`ray start` runs here), local (a private one on 127.0.0.1) or "
        "ray://HOST:PORT; each [[device]] of the recipe is timed on the "
        "node started with resource device:<name> (docs/cluster.md)",
    )
    report.add_argument(
        "--device-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="with --cluster: how long a device's rows wait for a node "
        "before they fail (default 600)",
    )
    _add_min_cos(report)
    report.set_defaults(func=_run_report)
    return report


def _add_timing_options(parser):
    parser.add_argument(
        "--threads",
        type=thread_counts,
        default=sorted({1, os.cpu_count() or 1}),
        help="comma-separated thread counts (default: 1,<cores>)",
    )
    parser.add_argument(
        "--runs", type=_count(1), default=50, help="timed runs per row"
    )
    parser.add_argument(
        "--warmup", type=_count(0), default=5, help="untimed runs first"
    )


def _add_min_cos(parser):
    parser.add_argument(
        "--min-cos",
        type=float,
        default=0.999,
        help="cosine budget: the fastest mode whose min cosine over levels "
        "meets it is highlighted (default 0.999)",
    )
