"""Measuring an artifact: fidelity to PyTorch, graph, XNNPACK, latency.

Fidelity: each artifact runs on the held-out inputs with the package's
runtime (`EdgeModel`: int8 inputs quantized, outputs dequantized with the
tensors' own parameters) and is compared level by level with the PyTorch
float model (`edge_backbones.exporter.fidelity_lib.compare`: worst-image cosine,
SQNR over all images). Peers name their outputs their own way
(`output_0`, ...), so outputs are matched to levels by shape, which is
unique per level in SegFormer (channels 32, 64, 160, 256).

A segmentation checkpoint's artifacts are compared on their logits (the
one output of its shape) and, by **mask agreement**, on their class maps:
the argmax of each artifact's logits against PyTorch's (every tool's
classes made the same way; ours also has a `classes` output, the same
argmax in its graph).

Latency: every model is timed in the same process in interleaved rounds
(each round times every model once), so a load that comes and goes on a
shared machine hits all of them; a model's latency is the median of its
round medians, and the table shows it as a ratio to our fp32.
"""

import os
import subprocess

import numpy as np

from edge_backbones.errors import FidelityError

__all__ = [
    "cpu_record",
    "fidelity",
    "graph_record",
    "mask_agreement",
    "match_levels",
    "run_model",
    "time_interleaved",
]


def match_levels(outputs, reference):
    """{level: output array}: each level's one output of the same shape.

    Raises FidelityError when a level has no output of its shape, or more
    than one (then shapes cannot tell the levels apart).
    """
    matched = {}
    for level, ref in reference.items():
        keys = [k for k, v in outputs.items() if v.shape == ref.shape]
        if len(keys) != 1:
            raise FidelityError(
                f"level {level} {ref.shape}: {len(keys)} outputs of that "
                f"shape among { ({k: v.shape for k, v in outputs.items()}) };"
                " cannot map outputs to levels by shape."
            )
        matched[level] = outputs[keys[0]]
    return matched


def run_model(path, images, threads):
    """{output name: (N, ...)} of the artifact on `images` (EdgeModel)."""
    from edge_backbones.runtime.edge_model import EdgeModel

    return EdgeModel(path, num_threads=threads).run_batch(images)


def fidelity(path, images, reference, threads, match=match_levels):
    """`fidelity_lib.compare` of the artifact's levels against `reference`;
    with reference logits, also the class maps' `mask_agreement`."""
    from benchmarks.peers.checkpoint import LOGITS
    from edge_backbones.core import fidelity as fidelity_lib

    matched = match(run_model(path, images, threads), reference)
    figures = fidelity_lib.compare(reference, matched)
    if LOGITS in reference:
        figures["masks"] = mask_agreement(matched[LOGITS], reference[LOGITS])
    return figures


def mask_agreement(logits, reference):
    """{"mean", "min"} over images of the share of pixels whose argmax
    class equals the reference logits' argmax."""
    from edge_backbones.core.segmentation_metrics import (
        mask_agreement as agreement,
    )

    shares = [
        agreement(np.argmax(out, -1), np.argmax(ref, -1))
        for out, ref in zip(logits, reference, strict=True)
    ]
    return {"mean": float(np.mean(shares)), "min": float(np.min(shares))}


def graph_record(path, threads):
    """Ops, their histogram, I/O dtypes and XNNPACK's partitioning."""
    from edge_backbones.runtime.backends import load_backend
    from edge_backbones.runtime.delegates import delegation_summary
    from edge_backbones.runtime.model_file import read_model_file

    model_file = read_model_file(path)
    interpreter = load_backend().Interpreter(
        model_path=path, num_threads=threads
    )
    interpreter.allocate_tensors()
    summary = delegation_summary(interpreter)
    partitions, leftovers = summary if summary else (None, None)
    record = {
        "ops": model_file.op_count,
        "op_histogram": dict(model_file.op_histogram),
        "size_bytes": os.path.getsize(path),
        "input_dtype": str(
            interpreter.get_input_details()[0]["dtype"].__name__
        ),
        "xnnpack_partitions": partitions,
        # op name -> count of ops no delegate took (CPU fallback kernels)
        "cpu_fallback_ops": None
        if leftovers is None
        else {op: leftovers.count(op) for op in sorted(set(leftovers))},
        "whole_graph_on_xnnpack": None
        if summary is None
        else partitions == 1 and not leftovers,
    }
    del interpreter
    return record


def time_interleaved(paths, threads, rounds, runs, warmup, log=print):
    """{path: {median_ms, round_medians_ms}}: rounds of every model."""
    from edge_backbones.runtime.bench import benchmark

    medians = {path: [] for path in paths}
    for index in range(rounds):
        log(f"peers: timing round {index + 1}/{rounds} ({len(paths)} models)")
        for path in paths:
            result = benchmark(
                path, num_threads=threads, runs=runs, warmup=warmup
            )
            medians[path].append(result["latency_ms"]["median"])
    return {
        path: {
            "median_ms": float(np.median(values)),
            "round_medians_ms": [round(v, 3) for v in values],
        }
        for path, values in medians.items()
    }


def cpu_record():
    """The CPU the timings come from: `core.cpuinfo.cpu_record` (model,
    flags, clock, peak model, load) and lscpu's text."""
    from edge_backbones.core.cpuinfo import cpu_record as core_record

    try:
        lscpu = subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        lscpu = f"lscpu failed: {exc}"
    return {**core_record(), "lscpu": lscpu}
