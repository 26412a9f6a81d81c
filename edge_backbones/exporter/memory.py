"""Will an export at this image size fit in memory? Checked up front.

An export runs the Keras float model and the TFLite interpreter at batch 1
on full-size images, so its largest activation is allocated several times
over: an op's input and output live together, and TensorFlow and the
interpreter each hold one. `check_backbone` asks the family for its largest
activation (`Backbone.peak_activation_bytes`: at large sizes the attention
score matrices, which grow with the square of the pixel count) and needs
`ACTIVATION_COPIES` of it free, plus `WEIGHT_COPIES` float32 copies of the
weights and the TensorFlow runtime itself (`RUNTIME_BYTES`). That is an
estimate from the architecture, not a per-family pixel cap: a small model
may go larger than a big one.

The estimate is per phase (`phase_bytes`; measured with `PhaseMeter`,
`benchmarks/memory/`): the float reference (the Keras model as one
graph: a few score-sized blocks at once, `REFERENCE_ACTIVATION_COPIES`),
the trace, each conversion and each verification. A conversion holds the weights
many times over: the Keras model's variables, the SavedModel the
converter loads, its frozen constants and the MLIR module built from
them, and the flatbuffer (`WEIGHT_COPIES` in one process; on
sam_vit_base at 256, 331 MiB of weights, the fp32 conversion peaked at
3574 MiB). Where that does not fit, `isolate_conversion` splits the
export: the Keras model is freed after the trace and each float
conversion runs in a child process (`exporter.isolated`,
`CHILD_WEIGHT_COPIES`), so the peak is the largest phase, not their sum.

`check_input` runs before the model is even built (building allocates
size-dependent weights such as ViTDet's position tables): the images alone
(float32, `INPUT_COPIES` copies: decoded, resized, batched, the model's
input) must fit, so a 100000 px size fails in microseconds.

Free memory is Linux's MemAvailable, capped by the cgroup's limit when one
is set and by `EDGE_BACKBONES_MAX_MEMORY_GIB` when that is set; elsewhere
it is unknown and nothing is checked.
"""

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from edge_backbones.errors import InputError

__all__ = [
    "ACTIVATION_COPIES",
    "CHILD_WEIGHT_COPIES",
    "INPUT_COPIES",
    "MAX_MEMORY_ENV",
    "REFERENCE_ACTIVATION_COPIES",
    "RUNTIME_BYTES",
    "WEIGHT_COPIES",
    "PhaseMeter",
    "available_bytes",
    "check_backbone",
    "check_input",
    "isolate_conversion",
    "peak_rss_bytes",
    "phase_bytes",
    "resident_bytes",
]

# the memory an export may use, in GiB, below what is free: on a shared
# machine, what the others leave it (the export then splits itself or
# refuses up front by this figure)
MAX_MEMORY_ENV = "EDGE_BACKBONES_MAX_MEMORY_GIB"
ACTIVATION_COPIES = 3
# the float reference: the Keras model as one tf.function
# (`graph.reference_outputs`), which frees each tensor after its last use;
# a global attention block still holds its scores, their sums with the
# relative position terms and the softmax's output at once. Measured on
# sam_vit_base at 1024 (768 MiB scores): 2.5 score-sized blocks over the
# built model, tracing included (eager Keras: 6.3; on sam_vit_huge 15)
REFERENCE_ACTIVATION_COPIES = 3
INPUT_COPIES = 4
WEIGHT_COPIES = 8
# a float conversion in a child process (`exporter.isolated`, with a fixed
# malloc mmap threshold), per converter kind: the SavedModel it loads, the
# frozen constants, the MLIR module, the flatbuffer. Measured: fp32 on
# sam_vit_base 3.7; fp16 on sam_vit_huge at 1024 3.0 (8353 MiB), on
# sam_vit_base 2.1 (its flatbuffer is half the bytes); dynamic is not
# measured and counted as fp32. The export's own process keeps the pages
# of the Keras model it freed (measured: sam_vit_huge's parent stayed at
# 3687 MiB, the runtime and one copy of the weights, beside the child)
CHILD_WEIGHT_COPIES = {"fp32": 5.0, "fp16": 3.5, "dynamic": 5.0}
# verifying: the candidate's bytes, the interpreter's copy and XNNPACK's
# packed float32 weights, per converter kind (an fp16 candidate is half
# the bytes; XNNPACK unpacks its weights to float32), beside the pages of
# the Keras model
VERIFY_WEIGHT_COPIES = {"fp32": 3.0, "fp16": 2.0}
# TensorFlow + Keras imported (624 MiB), the converter and the interpreter
RUNTIME_BYTES = 1152 * 2**20


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # absent, or "max": no limit


def _cgroup_free():
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit_bytes, used = _read_int(limit), _read_int(usage)
        if limit_bytes is not None and used is not None:
            return max(limit_bytes - used, 0)
    return None


def _cap():
    """`MAX_MEMORY_ENV` in bytes, or None when unset; InputError when it
    is not a positive number."""
    value = os.environ.get(MAX_MEMORY_ENV)
    if not value:
        return None
    try:
        gib = float(value)
    except ValueError:
        gib = -1.0
    if not gib > 0:
        raise InputError(
            f"{MAX_MEMORY_ENV}={value!r} is not a positive number of GiB. "
            f"Set it to the memory an export may use (e.g. "
            f"{MAX_MEMORY_ENV}=12), or unset it to use what is free."
        )
    return int(gib * 2**30)


def available_bytes() -> int | None:
    """Memory this process can still allocate, or None if unknown; never
    more than `MAX_MEMORY_ENV` GiB where it is set."""
    cap = _cap()
    free = _free()
    if cap is None or free is None:
        return free if cap is None else cap
    return min(free, cap)


def _free():
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    limit = _cgroup_free()
    if free is None or limit is None:
        return free if limit is None else limit
    return min(free, limit)


def _machine():
    """` on this machine of 23.4 GiB`, or "" where the total is unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    total = int(line.split()[1]) * 1024
                    return f" on this machine of {total / 2**30:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return ""


def _refuse(what, needed, free, size):
    smaller = (
        "Export a smaller size (e.g. --image-size 512; the artifact's input "
        "size is fixed), or free memory"
        if max(size) > 512
        else "Free memory"
    )
    raise InputError(
        f"image_size={size[0]}x{size[1]} cannot be exported here: {what} "
        f"needs about {needed / 2**30:.1f} GiB and {free / 2**30:.1f} GiB "
        f"is free{_machine()}. {smaller}, or export on a larger machine "
        "(report --cluster)."
    )


def check_input(size: Sequence[int], free: int | None = None) -> None:
    """InputError if the images alone at `size` cannot fit in memory.

    Raises:
        InputError: the input images alone exceed the free memory.
    """
    free = available_bytes() if free is None else free
    needed = INPUT_COPIES * size[0] * size[1] * 3 * 4
    if free is not None and needed > free:
        _refuse(
            f"{INPUT_COPIES} float32 copies of the image", needed, free, size
        )


def phase_bytes(
    backbone: Any,
    size: Sequence[int],
    isolated: bool = False,
    converters: Sequence[str] = ("fp32",),
) -> dict[str, int]:
    """{phase: bytes} an export of `backbone` at `size` holds at once.

    In one process (`isolated` False) the conversion holds the Keras
    model beside the converter's copies; `isolated`, the Keras model is
    freed after the SavedModel is traced and each conversion runs in a
    child process (`exporter.isolated`), so the conversion phase is this
    process (its runtime and the pages the Keras model held) plus the
    child's. `converters`: the converter kinds the export runs
    (`modes.Plan.converter`); an fp16 conversion and its verification
    hold fewer copies than fp32 ones.
    """
    peak = backbone.peak_activation_bytes(*size)
    activations = ACTIVATION_COPIES * peak
    reference = RUNTIME_BYTES + REFERENCE_ACTIVATION_COPIES * peak
    weights = 4 * backbone.count_params()
    keras = weights  # the Keras model's variables
    verify = (
        RUNTIME_BYTES
        + keras
        + max(VERIFY_WEIGHT_COPIES.get(kind, 3.0) for kind in converters)
        * weights
        + activations
    )
    if not isolated:
        return {
            "reference": reference + keras,
            "convert": RUNTIME_BYTES + WEIGHT_COPIES * weights,
            "verify": int(verify),
        }
    child = max(
        CHILD_WEIGHT_COPIES.get(kind, WEIGHT_COPIES) for kind in converters
    )
    return {
        "reference": reference + keras,
        "trace": RUNTIME_BYTES + 2 * keras,
        "convert": int(2 * RUNTIME_BYTES + keras + child * weights),
        "verify": int(verify),
    }


def isolate_conversion(
    backbone: Any,
    size: Sequence[int],
    eligible: bool,
    converters: Sequence[str] = ("fp32",),
    free: int | None = None,
) -> bool:
    """Whether to free the Keras model and convert in child processes.

    Only where the export's plans allow it (`eligible`: float conversions
    of one of our backbones) and the in-process export does not fit in
    the free memory: a child costs a TensorFlow import per conversion,
    seconds that a small export does not need to spend.
    """
    if not eligible:
        return False
    free = available_bytes() if free is None else free
    alone = phase_bytes(backbone, size, converters=converters)
    return free is not None and max(alone.values()) > free


def check_backbone(
    backbone: Any,
    size: Sequence[int],
    free: int | None = None,
    isolated: bool = False,
    converters: Sequence[str] = ("fp32",),
) -> None:
    """InputError if `backbone`'s export at `size` cannot fit.

    `isolated`: the Keras model is freed and conversions run in child
    processes (`isolate_conversion`), so the largest phase is counted.

    Raises:
        InputError: the estimated peak exceeds the free memory.
    """
    free = available_bytes() if free is None else free
    phases = phase_bytes(backbone, size, isolated, converters)
    needed = max(phases.values())
    if free is None or needed <= free:
        return
    peak = backbone.peak_activation_bytes(*size)
    weights = 4 * backbone.count_params()
    largest = max(phases, key=phases.__getitem__)
    if largest == "convert":
        copies = max(
            CHILD_WEIGHT_COPIES.get(k, WEIGHT_COPIES) for k in converters
        )
        what = (
            (
                f"converting in a child process ({copies:g} "
                "float32 copies of the weights beside this process's one"
            )
            if isolated
            else f"converting ({WEIGHT_COPIES} float32 copies of the weights"
        ) + f", {weights / 2**30:.1f} GiB each) with TensorFlow"
    else:
        copies = (
            REFERENCE_ACTIVATION_COPIES
            if largest == "reference"
            else ACTIVATION_COPIES
        )
        what = (
            f"its largest activation ({peak / 2**30:.1f} GiB, estimated by "
            f"{type(backbone).__name__}.peak_activation_bytes) x "
            f"{copies} beside the float32 weights "
            f"({weights / 2**30:.1f} GiB) and TensorFlow ({largest})"
        )
    _refuse(what, needed, free, size)


def _status_kib(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux), or None."""
    rss = _status_kib("VmRSS")
    return None if rss is None else rss * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident memory since the last phase reset."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    # not Linux: the whole process's peak (macOS counts bytes)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def _reset_peak():
    """Lowers the kernel's high-water mark to the current resident size
    (Linux >= 4.0), so the next reading is one phase's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PhaseMeter:
    """The peak resident memory of each phase of an export.

    `with meter.phase("trace"):` measures one phase; `phases` maps each
    name to its peak in bytes (the whole process's resident memory, not
    the phase's increment: the phase whose peak is highest is the one
    that decides whether an export fits). On a kernel that cannot reset
    the high-water mark, each reading is the peak so far.
    """

    def __init__(self, log: Callable[[str], object] | None = None) -> None:
        self.phases: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._log = log

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        _reset_peak()
        started = time.perf_counter()
        try:
            yield
        finally:
            peak = peak_rss_bytes()
            spent = time.perf_counter() - started
            self.phases[name] = max(peak, self.phases.get(name, 0))
            self.seconds[name] = self.seconds.get(name, 0.0) + spent
            if self._log is not None:
                self._log(
                    f"memory: {name}: peak RSS {peak / 2**20:.0f} MiB, "
                    f"{spent:.1f} s"
                )

    def summary(self) -> dict[str, int]:
        """{phase: peak MiB}, rounded, in phase order."""
        return {name: round(b / 2**20) for name, b in self.phases.items()}

    def add_child(self, name: str, child_peak: int, alongside: int) -> None:
        """Counts a child process into phase `name`: its peak plus this
        process's resident bytes while it ran (`alongside`), the memory
        both held at once (`exporter.isolated`)."""
        both = alongside + child_peak
        self.phases[name] = max(both, self.phases.get(name, 0))
        if self._log is not None:
            self._log(
                f"memory: {name}: child process peak RSS "
                f"{child_peak / 2**20:.0f} MiB, with this process "
                f"{both / 2**20:.0f} MiB"
            )
