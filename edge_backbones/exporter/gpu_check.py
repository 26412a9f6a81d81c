"""The `gpu` target's check on LiteRT's real GPU accelerator.

The TFLite Analyzer calls almost every graph "GPU compatible"; the GPU
delegate itself is stricter (no tensors above 4-D, no dynamic shapes, ...).
When this machine has a usable GPU adapter (a real GPU, or a software
Vulkan driver from `benchmarks/gpu/install_software_vulkan.sh`), the
candidate runs on it through the runtime with `strict=True`: every op must
be taken by the GPU (as the delegate's own log reports), and every level
must pass the mode's fidelity gate there too. Without an adapter the check is
recorded as not run, with the probe's reason.

Timings on a software driver are never GPU speeds; only the fidelity and
the op coverage recorded here are meaningful.
"""

import collections

from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.errors import DelegateUnavailableError, ExportError
from edge_backbones.exporter import verify
from edge_backbones.runtime import gpu_probe

__all__ = ["run_on_gpu"]

NOT_RUN = "not run: no GPU adapter"


def run_on_gpu(path, holdout, reference, gate, mode, what, num_threads=None):
    """Runs `path` on the GPU accelerator -> the metadata's `gpu_run` dict.

    Raises ExportError naming the ops that fell back to the CPU when the
    GPU does not take the whole graph, and FidelityError when its outputs
    fall below `gate`.
    """
    verdict = gpu_probe.gpu_verdict()
    if not verdict.usable:
        return {"status": NOT_RUN, "reason": verdict.reason}
    from edge_backbones.runtime.edge_model import EdgeModel

    where = f"LiteRT's GPU accelerator on {verdict.device}"
    try:
        model = EdgeModel(
            path, delegates=("gpu",), strict=True, num_threads=num_threads
        )
    except DelegateUnavailableError as exc:
        raise ExportError(
            f"{what} ({mode}) did not compile on {where}: {exc} Export fp16 "
            "for a CPU instead, or fix the graph."
        ) from exc
    if not model.fully_delegated:
        counts = dict(collections.Counter(model.cpu_ops or ()))
        raise ExportError(
            f"{what} ({mode}) is not fully accelerated on {where}: "
            f"{model._engine.fallback_report}. Ops that fell back: "
            f"{counts}. Known GPU traps: tensors above 4-D, dynamic RESHAPE, "
            "GELU/LayerNorm on some back-ends. Rewrite those ops, or export "
            "fp16 for a CPU instead."
        )
    try:
        outputs = model.run_batch(holdout)
    except RuntimeError as exc:
        raise ExportError(
            f"{what} ({mode}) compiled but failed to run on {where}: {exc}. "
            "A software driver on a busy machine can hit LiteRT's fixed "
            "120 s buffer-lock timeout on a cold shader compile; retry, or "
            "use a smaller image size."
        ) from exc
    del model
    fidelity = fidelity_lib.compare(reference, outputs)
    verify.check(fidelity, gate, mode, f"{what} on {where}")
    return {
        "status": "ran",
        "device": verdict.device,
        "software": verdict.software,
        "fully_delegated": True,
        "cosine": {
            name: figures["cosine"]
            for name, figures in fidelity["levels"].items()
        },
    }
