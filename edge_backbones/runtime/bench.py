"""Latency of an exported model through `EdgeModel`, as a dict a machine reads.

Warm-up runs, then timed runs of `model(x)` on a fixed input in the model's
input space (so preprocessing is not timed). With `compare_bare`, each timed
call alternates with a bare `interpreter.invoke()` on the same interpreter,
so both see the same machine load and the ratio measures what the wrapper
adds (quantizing, copying and dequantizing the tensors).
"""

import collections
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from edge_backbones.core.cpuinfo import cpu_flags, peak_cpuinfo, read_cpuinfo
from edge_backbones.core.peak import (
    SiliconShare,
    cpu_frequency_mhz,
    peak_model,
    silicon_share,
)
from edge_backbones.errors import InputError
from edge_backbones.runtime.edge_model import EdgeModel, TensorSpec
from edge_backbones.runtime.macs import count_macs

__all__ = [
    "BenchmarkResult",
    "LatencyStats",
    "benchmark",
    "benchmark_sam_decoder",
    "latency_stats",
    "physical_limit",
    "peak_rss_mb",
    "format_table",
]


class LatencyStats(TypedDict):
    """`latency_stats`: milliseconds, over `runs` timed calls."""

    median: float
    p5: float
    p95: float
    mean: float
    std: float
    min: float
    max: float
    runs: int


class _BareComparison(TypedDict, total=False):
    bare_latency_ms: LatencyStats
    wrapper_over_bare: float  # ratio of medians


class BenchmarkResult(_BareComparison):
    """What `benchmark` returns (the bare keys only with compare_bare)."""

    model: str
    size_bytes: int
    threads: int | None
    backend: str  # "litert 2.3.0"
    delegate: str
    fully_delegated: bool | None
    cpu_ops: dict[str, int] | None  # op name -> count no delegate took
    init_ms: float
    warmup: int
    latency_ms: LatencyStats
    peak_rss_mb: float | None
    # MACs, GMAC/s and their share of this CPU's fp32 and int8 peak
    silicon: SiliconShare


# seconds between progress lines on stderr; shorter runs print none
_PROGRESS_EVERY_S = 5.0


def latency_stats(seconds: Sequence[float]) -> LatencyStats:
    """Summary (milliseconds) of a list of durations in seconds."""
    ms = np.asarray(seconds, np.float64) * 1e3
    return {
        "median": float(np.median(ms)),
        "p5": float(np.percentile(ms, 5)),
        "p95": float(np.percentile(ms, 95)),
        "mean": float(ms.mean()),
        "std": float(ms.std()),
        "min": float(ms.min()),
        "max": float(ms.max()),
        "runs": int(ms.size),
    }


def peak_rss_mb() -> float | None:
    """The process's peak resident memory so far, in MiB (None if unknown).

    It covers everything the process loaded before, so compare models in
    separate processes. Linux's `VmHWM` comes first: it starts afresh at
    exec, whereas `ru_maxrss` can carry the high-water mark of the parent
    that started this process (one that may hold TensorFlow).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        pass
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes
        return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
    try:
        import psutil
    except ImportError:
        return None
    info = psutil.Process().memory_info()
    return float(getattr(info, "peak_wset", info.rss) / (1 << 20))


def _fixed_input(spec: TensorSpec) -> npt.NDArray[Any]:
    rng = np.random.default_rng(0)
    dtype = np.dtype(spec.dtype)
    values: npt.NDArray[Any]
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, spec.shape, endpoint=True)
    else:
        values = rng.standard_normal(spec.shape)
    return values.astype(dtype)


def benchmark(
    model_path: str | os.PathLike[str],
    num_threads: int | None = None,
    runs: int = 50,
    warmup: int = 5,
    *,
    compare_bare: bool = False,
    label: str | None = None,
    **model_options: Any,
) -> BenchmarkResult:
    """Times `EdgeModel(model_path, ...)`; returns a JSON-ready dict.

    `model_options` go to `EdgeModel` (delegates, backend, strict, ...).
    Keys: model, size_bytes, threads, backend, delegate, fully_delegated,
    cpu_ops, init_ms, warmup, latency_ms {median, p5, p95, mean, std, min,
    max, runs}, peak_rss_mb, silicon (`physical_limit` of the median), and
    with `compare_bare` also bare_latency_ms and wrapper_over_bare (ratio
    of medians).

    Raises:
        InputError: runs < 1 or warmup < 0, or a bad model option.
        ModelFileError, MetadataError, DelegateUnavailableError: as
            `EdgeModel` raises them.
    """
    if runs < 1 or warmup < 0:
        raise InputError(
            f"runs must be >= 1 and warmup >= 0; got runs={runs}, "
            f"warmup={warmup}."
        )
    label = label or os.path.basename(os.fspath(model_path))
    start = time.perf_counter()
    model = EdgeModel(model_path, num_threads=num_threads, **model_options)
    init_s = time.perf_counter() - start
    x = _fixed_input(model.input_spec)
    for _ in range(warmup):
        model(x)
    progress = f"bench {label} threads={num_threads}"
    wrapped, bare = _timed_runs(model, x, runs, compare_bare, progress)
    latency = latency_stats(wrapped)
    result: BenchmarkResult = {
        "model": os.fspath(model_path),
        "size_bytes": os.path.getsize(model_path),
        "threads": num_threads,
        "backend": f"{model.backend.name} {model.backend.version}",
        "delegate": model.active_delegate,
        "fully_delegated": model.fully_delegated,
        # op name -> count of ops no delegate took; None if unknown
        "cpu_ops": (
            None
            if model.cpu_ops is None
            else dict(collections.Counter(model.cpu_ops).most_common())
        ),
        "init_ms": init_s * 1e3,
        "warmup": warmup,
        "latency_ms": latency,
        "peak_rss_mb": peak_rss_mb(),
        "silicon": physical_limit(
            model_path, latency["median"] / 1e3, num_threads
        ),
    }
    if compare_bare:
        result["bare_latency_ms"] = latency_stats(bare)
        result["wrapper_over_bare"] = (
            result["latency_ms"]["median"] / result["bare_latency_ms"]["median"]
        )
    return result


def physical_limit(
    model_path: str | os.PathLike[str],
    seconds: float,
    num_threads: int | None,
    flags: Iterable[str] | None = None,
) -> SiliconShare:
    """How far one inference of `seconds` is from the silicon: the graph's
    MACs (`runtime.macs`), GMAC/s, and its share of the fp32 and int8
    peaks of `num_threads` cores of this CPU (`core.peak`; `flags`:
    another CPU's, default this one's or `EDGE_BACKBONES_CPU_FLAGS`)."""
    info = read_cpuinfo()
    if flags is None:
        flags, info_for_peak = cpu_flags() or (), peak_cpuinfo(info)
    else:  # another CPU's flags: this one's family says nothing of it
        info_for_peak = None
    peak = peak_model(flags, info_for_peak)
    mhz, _ = cpu_frequency_mhz(info)
    cores = num_threads or os.cpu_count() or 1
    macs = int(count_macs(model_path)["total"])
    return silicon_share(macs, seconds, cores, peak, mhz)


def _timed_runs(
    model: EdgeModel,
    x: npt.NDArray[Any],
    runs: int,
    compare_bare: bool,
    progress: str,
) -> tuple[list[float], list[float]]:
    """(wrapped, bare) durations in seconds of `runs` calls of `model(x)`;
    `bare` holds a bare `invoke()` after each call with `compare_bare`."""
    engine = model._engine  # noqa: SLF001 - the same one, on purpose
    wrapped: list[float] = []
    bare: list[float] = []
    last_report = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        model(x)
        t1 = time.perf_counter()
        wrapped.append(t1 - t0)
        if compare_bare:
            # the wrapper's call left the same input in the tensor
            engine.invoke()
            bare.append(time.perf_counter() - t1)
        if time.perf_counter() - last_report > _PROGRESS_EVERY_S:
            last_report = time.perf_counter()
            print(
                f"{progress}: {i + 1}/{runs} runs, "
                f"median so far {np.median(wrapped) * 1e3:.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    return wrapped, bare


def _silicon_cells(silicon: SiliconShare | None) -> list[str]:
    if silicon is None:
        return ["?", "?", "?"]
    shares = [silicon["fp32_peak_share"], silicon["int8_peak_share"]]
    return [f"{silicon['gmac_per_s']:.1f}"] + [
        "?" if s is None else f"{s:.0%}" for s in shares
    ]


def format_table(results: Iterable[BenchmarkResult]) -> str:
    """A readable table of `benchmark` results, one row per result."""
    header = [
        *("model", "threads", "delegate", "full", "init ms", "median"),
        *("p5", "p95", "std", "peak MiB", "GMAC/s", "fp32 pk", "int8 pk"),
    ]
    with_bare = any("wrapper_over_bare" in r for r in results)
    if with_bare:
        header += ["bare med", "wrap/bare"]
    rows = [header]
    for r in results:
        lat = r["latency_ms"]
        full = {True: "yes", False: "no", None: "n/a"}[r["fully_delegated"]]
        peak = r["peak_rss_mb"]
        row = [
            os.path.basename(r["model"]),
            str(r["threads"] if r["threads"] is not None else "default"),
            r["delegate"],
            full,
            f"{r['init_ms']:.1f}",
            f"{lat['median']:.3f}",
            f"{lat['p5']:.3f}",
            f"{lat['p95']:.3f}",
            f"{lat['std']:.3f}",
            "?" if peak is None else f"{peak:.0f}",
            *_silicon_cells(r.get("silicon")),
        ]
        if with_bare:
            bare = r.get("bare_latency_ms")
            row += (
                [f"{bare['median']:.3f}", f"{r['wrapper_over_bare']:.3f}"]
                if bare
                else ["", ""]
            )
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def benchmark_sam_decoder(
    model_path: str | os.PathLike[str],
    num_threads: int | None = None,
    runs: int = 50,
    warmup: int = 5,
) -> dict[str, Any]:
    """Times a SAM mask decoder artifact: one run is one prompt (one
    foreground point) on fixed embeddings, run as `SamPredictor` runs it.
    Keys as `benchmark`'s (no delegate: XNNPACK, the CPU default)."""
    from edge_backbones.runtime.backends import load_backend
    from edge_backbones.runtime.sam_predictor import SignatureModel

    backend = load_backend(None)
    start = time.perf_counter()
    decoder = SignatureModel(model_path, num_threads=num_threads)
    init_s = time.perf_counter() - start
    feed: dict[str, npt.NDArray[np.float32]] = {}
    for name, details in decoder.input_details.items():
        shape = [int(n) for n in details["shape"]]
        feed[name] = np.zeros(shape, np.float32)
    feed["image_embeddings"] = (
        np.random.default_rng(0)
        .standard_normal(feed["image_embeddings"].shape)
        .astype(np.float32)
    )
    feed["point_labels"][...] = -1.0
    feed["point_labels"][0, 0] = 1.0
    feed["point_coords"][0, 0] = 8.0
    for _ in range(warmup):
        decoder(**feed)
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        decoder(**feed)
        seconds.append(time.perf_counter() - t0)
    return {
        "model": os.fspath(model_path),
        "size_bytes": os.path.getsize(model_path),
        "threads": num_threads,
        "backend": f"{backend.name} {backend.version}",
        "delegate": None,
        "fully_delegated": None,
        "cpu_ops": None,
        "init_ms": init_s * 1e3,
        "warmup": warmup,
        "latency_ms": latency_stats(seconds),
        "peak_rss_mb": peak_rss_mb(),
    }
