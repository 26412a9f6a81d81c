"""Will an export's files fit on disk? Checked up front, and at the end.

An export writes into two places: the scratch folder (the SavedModel of
each traced graph and the candidate .tflite being verified; a work folder
inside `out` unless `work_dir` names another) and `out` (each artifact,
staged beside its destination so the rename stays on one file system).
`check_free` compares each file system's free space with the export's own
size estimate before any work; `DiskSpaceError` names the folder, the
space needed and the space there is, and the relief: `--work-dir` on
another file system. A write that still runs out of space (the estimate
is an estimate; another process filled the disk) becomes the same error
through `as_disk_space_error`.
"""

import errno
import os
import shutil

from edge_backbones.errors import DiskSpaceError

__all__ = [
    "SAVED_MODEL_OVERHEAD",
    "as_disk_space_error",
    "check_free",
    "estimate",
]

# a SavedModel holds the float32 weights plus the graph and its checkpoint
# index; measured ~1.05-1.3x the weights on the tiny and base presets
SAVED_MODEL_OVERHEAD = 1.3
# an artifact holds at most the float32 weights plus its graph and metadata
_ARTIFACT_OVERHEAD = 1.2
_SLACK = 2**20  # graph files, sidecars, journal


def estimate(params, plans, integer_graphs):
    """{"scratch": bytes, "out": bytes} an export of `plans` writes.

    `params`: the backbone's parameter count; `integer_graphs`: how many
    extra SavedModels the full-int8 plans trace.
    """
    weights = 4 * params
    saved = (1 + integer_graphs) * SAVED_MODEL_OVERHEAD * weights
    # one candidate at a time beside the SavedModels
    scratch = saved + _ARTIFACT_OVERHEAD * weights + _SLACK
    # the staged artifact and the one in place (a backup hard link
    # costs nothing): at most one fp32 artifact more than the folder holds
    out = len(plans) * _ARTIFACT_OVERHEAD * weights + _SLACK
    return {"scratch": int(scratch), "out": int(out)}


def _free(folder):
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


def _device(folder):
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return os.stat(path).st_dev


def _message(folder, needed, free, what):
    folder = os.fspath(folder)
    return (
        f"Not enough disk space in {folder!r} for {what}: it needs about "
        f"{needed / 2**20:.0f} MB and {free / 2**20:.0f} MB is free. Free "
        "space there, or put the SavedModel and candidates on another file "
        "system with --work-dir DIR (work_dir=...)."
    )


def check_free(out, work_dir, needs):
    """DiskSpaceError unless `needs` (from `estimate`) fits.

    The scratch files go to `work_dir` (None: a work folder inside
    `out`); when both are one file system their needs add up.
    """
    scratch = out if work_dir is None else work_dir
    places = [(scratch, needs["scratch"], "the SavedModel and candidates")]
    if _device(scratch) == _device(out):
        places = [(out, needs["scratch"] + needs["out"], "the export")]
    else:
        places.append((out, needs["out"], "the artifacts"))
    for folder, needed, what in places:
        free = _free(folder)
        if needed > free:
            raise DiskSpaceError(_message(folder, needed, free, what))


def as_disk_space_error(exc, folder):
    """A DiskSpaceError for `exc` if it is an out-of-space failure (an
    OSError ENOSPC, or TensorFlow's ResourceExhaustedError from a write),
    else None."""
    if isinstance(exc, DiskSpaceError):
        return exc
    folder = os.fspath(folder)
    out_of_space = isinstance(exc, OSError) and exc.errno in (
        errno.ENOSPC,
        errno.EDQUOT,
    )
    # TensorFlow's SaveV2 reports ENOSPC as ResourceExhaustedError
    if type(exc).__name__ == "ResourceExhaustedError":
        out_of_space = "no space left" in str(exc).lower()
    if not out_of_space:
        return None
    try:
        free = _free(folder)
    except OSError:
        free = 0
    return DiskSpaceError(
        f"The disk holding {folder!r} ran out of space during the export "
        f"({free / 2**20:.0f} MB free now). The previous artifacts are as "
        "they were and the work folder was removed. Free space there, or "
        "put the SavedModel and candidates on another file system with "
        "--work-dir DIR (work_dir=...)."
    )
