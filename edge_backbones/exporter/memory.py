"""Will an export at this image size fit in memory? Checked up front.

An export runs the Keras float model and the TFLite interpreter at batch 1
on full-size images, so its largest activation is allocated several times
over: an op's input and output live together, and TensorFlow and the
interpreter each hold one. `check_backbone` asks the family for its largest
activation (`Backbone.peak_activation_bytes`: at large sizes the attention
score matrices, which grow with the square of the pixel count) and needs
`ACTIVATION_COPIES` of it free. That is an estimate from the architecture,
not a per-family pixel cap: a small model may go larger than a big one.

`check_input` runs before the model is even built (building allocates
size-dependent weights such as ViTDet's position tables): the images alone
(float32, `INPUT_COPIES` copies: decoded, resized, batched, the model's
input) must fit, so a 100000 px size fails in microseconds.

Free memory is Linux's MemAvailable, capped by the cgroup's limit when one
is set; elsewhere it is unknown and nothing is checked.
"""

from collections.abc import Sequence
from typing import Any

from edge_backbones.errors import InputError

__all__ = [
    "ACTIVATION_COPIES",
    "INPUT_COPIES",
    "available_bytes",
    "check_backbone",
    "check_input",
]

ACTIVATION_COPIES = 3
INPUT_COPIES = 4


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


def available_bytes() -> int | None:
    """Memory this process can still allocate, or None if unknown."""
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


def _refuse(what, needed, free, size):
    raise InputError(
        f"image_size={size[0]}x{size[1]} cannot be exported here: {what} "
        f"needs about {needed / 2**30:.1f} GiB and {free / 2**30:.1f} GiB "
        "is free. Export a smaller size (e.g. --image-size 512; the "
        "artifact's input size is fixed), or free memory."
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


def check_backbone(
    backbone: Any, size: Sequence[int], free: int | None = None
) -> None:
    """InputError if `backbone`'s activations at `size` cannot fit.

    Raises:
        InputError: the largest activation exceeds the free memory.
    """
    free = available_bytes() if free is None else free
    peak = backbone.peak_activation_bytes(*size)
    needed = ACTIVATION_COPIES * peak + 4 * backbone.count_params()
    if free is not None and needed > free:
        _refuse(
            f"its largest activation ({peak / 2**30:.1f} GiB, estimated by "
            f"{type(backbone).__name__}.peak_activation_bytes) x "
            f"{ACTIVATION_COPIES} plus the weights",
            needed,
            free,
            size,
        )
