"""One run of the comparison: convert, measure, time, write.

    python -m benchmarks.peers --size 512 --out benchmarks/peers/results

See `benchmarks/peers/README.md`.
"""

import argparse
import contextlib
import importlib.metadata
import os
import shlex
import sys
import tempfile
import time

from edge_backbones.atomic_io import write_file_atomic, write_json_atomic

__all__ = ["main", "measure_row", "measure_rows", "run", "write"]

# the cosine the Pareto figure rings the fastest artifact at
MIN_COS = 0.999
_PACKAGES = (
    "edge-backbones",
    "ai-edge-litert",
    "litert-torch",
    "ai-edge-quantizer",
    "torch",
    "transformers",
    "tensorflow",
)
TIMING_NOTE = (
    "Latencies are ratios to our fp32 measured in the same process "
    "(absolute medians are in the JSON only); on a machine shared with "
    "other jobs they move by tens of percent between runs."
)


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _versions():
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _error_text(exc):
    return f"{type(exc).__name__}: {str(exc).strip()}"


def measure_row(peer, mode, built, inputs, reference, threads):
    """One row: the artifact's graph and fidelity, or its error."""
    from benchmarks.peers import measure
    from edge_backbones.core import fidelity as fidelity_lib

    row = {"tool": peer.tool, "mode": mode, "source": peer.source}
    if isinstance(built, Exception):
        return {**row, "error": _error_text(built), "path": None}
    try:
        graph = measure.graph_record(built, threads)
        fidelity = measure.fidelity(built, inputs.holdout, reference, threads)
    except Exception as exc:  # noqa: BLE001 - a row, never a crash
        return {**row, "error": f"measuring: {_error_text(exc)}", "path": None}
    masks = fidelity.pop("masks", None)
    return {
        **row,
        "error": None,
        "path": built,
        **graph,
        "fidelity": fidelity,
        **({"mask_agreement": masks} if masks else {}),
        "worst_cosine": fidelity_lib.min_level(fidelity, "cosine"),
        "worst_sqnr_db": fidelity_lib.min_level(fidelity, "sqnr_db"),
    }


def measure_rows(results, inputs, reference, threads):
    """A row per (peer, mode) of `peers.build_all`."""
    rows = []
    for peer, mode, built in results:
        _log(f"peers: measuring {peer.tool} {mode}")
        rows.append(measure_row(peer, mode, built, inputs, reference, threads))
    return rows


def _add_timings(rows, args):
    from benchmarks.peers import measure

    paths = [r["path"] for r in rows if not r["error"]]
    timings = measure.time_interleaved(
        paths, args.threads, args.rounds, args.runs, args.warmup, log=_log
    )
    ours = next(
        (r for r in rows if r["tool"] == "edge_backbones"
         and r["mode"] == "fp32" and not r["error"]),
        None,
    )  # fmt: skip
    base = timings[ours["path"]]["median_ms"] if ours else None
    for row in rows:
        timing = timings.get(row["path"]) if not row["error"] else None
        row["latency_ms"] = (
            {"median": timing["median_ms"],
             "round_medians": timing["round_medians_ms"]}
            if timing else None
        )  # fmt: skip
        row["latency_vs_our_fp32"] = (
            round(timing["median_ms"] / base, 3) if timing and base else None
        )
        if row["path"]:  # the artifacts are not kept: no dangling paths
            row["path"] = os.path.relpath(row["path"], args.work_dir)


def run(args, peers=None):
    """Everything but the writing; returns the result dict."""
    from benchmarks.peers import checkpoint, measure
    from benchmarks.peers import peers as peers_lib
    from edge_backbones.exporter.options import parse_image_size

    size = parse_image_size(args.size)
    task = getattr(args, "task", "backbone")
    segmentation = task == checkpoint.SEGMENTATION
    hf_class = (
        "SegformerForSemanticSegmentation" if segmentation else "SegformerModel"
    )
    folder = os.path.join(
        args.work_dir, "segformer_b0_ade_seed0" if segmentation else
        "segformer_b0_seed0"
    )  # fmt: skip
    _log(f"peers: {hf_class}(SegformerConfig()) seed 0 -> {folder}")
    hf_config = checkpoint.save_checkpoint(folder, args.config, task=task)
    inputs = checkpoint.load_inputs(args.calibration, size)
    reference = checkpoint.torch_reference(
        checkpoint.torch_module(folder, task),
        inputs.holdout,
        (checkpoint.LOGITS,) if segmentation else checkpoint.LEVELS,
    )
    context = peers_lib.Context(
        folder, size, args.calibration, inputs, args.work_dir, args.threads,
        task,
    )  # fmt: skip
    if peers is None:
        peers = peers_lib.peers_for(task, getattr(args, "tools", None))
    # converters print progress on stdout, which is the table's
    with contextlib.redirect_stdout(sys.stderr):
        built = peers_lib.build_all(context, peers, log=_log)
    rows = measure_rows(built, inputs, reference, args.threads)
    _add_timings(rows, args)
    return {
        "schema": "edge_backbones.peers/1",
        "command": args.command,
        "task": task,
        "checkpoint": (
            f"Hugging Face `{hf_class}(SegformerConfig("
            f"{args.config or ''}))`"
            + (f" ({hf_config.num_labels} classes)" if segmentation else "")
            + ", `torch.manual_seed(0)`, `save_pretrained`"
        ),
        "image_size": list(size),
        "calibration_images": len(inputs.calibration),
        "holdout_images": len(inputs.holdout),
        "calibration": inputs.source,
        "args": {k: getattr(args, k) for k in ("size", "threads", "rounds",
                                               "runs", "warmup")},
        "min_cos": MIN_COS,
        "cpu": measure.cpu_record(),
        "versions": _versions(),
        "timing_note": TIMING_NOTE,
        "rows": rows,
    }  # fmt: skip


def write(result, out):
    """`peers_<H>x<W>.{json,md,png}` in `out` (`peers_segmentation_...`
    for the segmentation checkpoint), each atomically."""
    from benchmarks.peers import report

    os.makedirs(out, exist_ok=True)
    height, width = result["image_size"]
    task = "segmentation_" if result.get("task") == "segmentation" else ""
    stem = os.path.join(out, f"peers_{task}{height}x{width}")
    write_json_atomic(stem + ".json", result, indent=1)
    write_file_atomic(stem + ".md", report.markdown(result).encode("utf-8"))
    write_file_atomic(stem + ".png", report.pareto(result))
    return stem


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers",
        description="edge_backbones against litert-torch and "
        "ai-edge-quantizer on one Hugging Face SegFormer-B0 checkpoint.",
    )
    parser.add_argument("--size", default="512", help="512 or 384x640")
    parser.add_argument(
        "--task",
        choices=("backbone", "segmentation"),
        default="backbone",
        help="the checkpoint: SegformerModel (backbone, the default) or "
        "SegformerForSemanticSegmentation with its decode head, 150 "
        "classes (segmentation: logits and mask agreement vs PyTorch)",
    )
    parser.add_argument(
        "--tools",
        help="only these tools, comma-separated (edge_backbones, "
        "litert-torch, ai-edge-quantizer); default: all",
    )
    parser.add_argument("--calibration", default="calibration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/peers/results")
    parser.add_argument(
        "--work-dir",
        help="keep the checkpoint and artifacts here (default: a "
        "temporary folder, deleted)",
    )
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    args.command = shlex.join(["python", "-m", "benchmarks.peers", *argv])
    args.config = None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        args.work_dir = args.work_dir or tmp
        result = run(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    stem = write(result, args.out)
    from benchmarks.peers import report

    print(report.table(result["rows"]))
    _log(f"peers: done in {result['seconds']:.0f} s -> {stem}.{{md,json,png}}")
    return 0
