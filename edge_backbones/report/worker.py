"""Times one job in a fresh process: `python -m edge_backbones.report.worker
'<job json>'` prints the result as JSON on its last stdout line.

Each row of a report runs in its own process so that its peak memory is its
own (the peak RSS of a process only grows) and so that TensorFlow's thread
count, fixed at its first use, can differ per row. A `tflite` job imports
only the runtime; a `keras` job imports TensorFlow.
"""

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["run_job"]


def _tflite(job):
    from edge_backbones.runtime.bench import benchmark, benchmark_sam_decoder

    if job.get("sam_part") == "decoder":  # one run is one prompt
        return benchmark_sam_decoder(
            job["path"],
            num_threads=job["threads"],
            runs=job["runs"],
            warmup=job["warmup"],
        )
    return benchmark(
        job["path"],
        num_threads=job["threads"],
        runs=job["runs"],
        warmup=job["warmup"],
    )


def _keras(job):
    """The Keras float serving model on TensorFlow CPU at batch 1.

    The same graph the exporter converts, run by `predict_on_batch` (one
    compiled tf.function call, without `predict`'s per-call dataset setup).
    Weights do not change float latency, so the architecture is rebuilt
    from its config.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edge_backbones.errors import require

    tf = require("tensorflow", "export")
    tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import edge_backbones
    from edge_backbones.exporter.graph import serving_model
    from edge_backbones.runtime.bench import latency_stats, peak_rss_mb

    started = time.perf_counter()
    family = getattr(edge_backbones, job["class_name"])
    backbone = family.from_config(job["config"])
    _, height, width, _ = job["shape"]
    model = serving_model(backbone, (height, width), job.get("out_features"))
    images = np.random.default_rng(0).standard_normal(
        (1, height, width, 3), dtype=np.float32
    )
    model.predict_on_batch(images)
    init_ms = (time.perf_counter() - started) * 1e3
    for _ in range(job["warmup"]):
        model.predict_on_batch(images)
    seconds = []
    for _ in range(job["runs"]):
        start = time.perf_counter()
        model.predict_on_batch(images)
        seconds.append(time.perf_counter() - start)
    return {
        "threads": job["threads"],
        "backend": f"tensorflow {tf.__version__} (keras)",
        "delegate": None,
        "fully_delegated": None,
        "cpu_ops": None,
        "init_ms": init_ms,
        "latency_ms": latency_stats(seconds),
        "peak_rss_mb": peak_rss_mb(),
    }


def _gpu(job):
    """A `gpu` artifact on LiteRT's GPU accelerator (strict), and on which
    adapter: a software Vulkan driver's timing is no GPU speed."""
    from edge_backbones.runtime import gpu_probe
    from edge_backbones.runtime.bench import benchmark

    result = benchmark(
        job["path"],
        runs=job["runs"],
        warmup=job["warmup"],
        delegates=("gpu",),
        strict=True,
    )
    verdict = gpu_probe.gpu_verdict()
    return {
        **result,
        "gpu_device": verdict.device,
        "software_driver": verdict.software,
    }


def run_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Runs one timing job ({"kind": "tflite" | "keras" | "gpu", ...}) in
    this process; returns its result row."""
    kinds = {"tflite": _tflite, "keras": _keras, "gpu": _gpu}
    return kinds[job["kind"]](job)


def _main() -> int:
    from edge_backbones.atomic_io import dumps_json
    from edge_backbones.errors import EdgeBackbonesError

    try:
        result = run_job(json.loads(sys.argv[1]))
    except EdgeBackbonesError as exc:
        # the parent may run on another machine than this stderr (a
        # cluster node): the typed error travels on stdout too
        error = f"{type(exc).__name__}: {exc}"
        sys.stderr.write(error + "\n")
        sys.stdout.write("\n" + dumps_json({"error": error}) + "\n")
        return 1
    sys.stdout.write("\n" + dumps_json(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
