"""Label masks beside photos: found, checked and read before any work.

A labels folder holds one PNG index mask per photo, named like the photo
(`kitchen.jpg` -> `kitchen.png`), each pixel a class id, 255 ignored
(ADE20K's and Cityscapes' conventions). With `reduce_labels` (ADE20K's
"0 = other"), ids are read as transformers' image processors do. Every
problem (a photo without its mask, a mask of another size, ids outside
the model's classes) is an InputError naming the file and the fix, raised
by `check_labels` before a model runs.
"""

import os

import numpy as np

from edge_backbones.core.segmentation_metrics import (
    IGNORE_INDEX,
)
from edge_backbones.core.segmentation_metrics import (
    reduce_labels as _reduce,
)
from edge_backbones.errors import InputError

__all__ = ["check_labels", "label_path", "read_label"]

MASK_SUFFIX = ".png"


def label_path(labels_dir, photo):
    """The mask of `photo` in `labels_dir`: the photo's stem + `.png`."""
    stem = os.path.splitext(os.path.basename(os.fspath(photo)))[0]
    return os.path.join(os.fspath(labels_dir), stem + MASK_SUFFIX)


def read_label(path, reduce_labels=False):
    """(H, W) int64 class ids of the PNG index mask at `path`."""
    import cv2

    mask = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise InputError(
            f"Label mask {os.fspath(path)!r} is not a readable PNG; write "
            "masks as single-channel 8-bit PNGs of class ids."
        )
    if mask.ndim == 3:
        raise InputError(
            f"Label mask {os.fspath(path)!r} has {mask.shape[2]} channels; "
            "a mask is one channel of class ids (an index PNG), not a "
            "coloured picture."
        )
    mask = mask.astype(np.int64)
    return _reduce(mask) if reduce_labels else mask


def _photo_size(photo):
    import cv2

    image = cv2.imread(os.fspath(photo), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"Photo {os.fspath(photo)!r} is not readable.")
    return image.shape[:2]


def check_labels(labels_dir, photos, num_classes, reduce_labels=False):
    """{photo: its mask's path}, every mask checked; InputError otherwise.

    Each photo needs `<stem>.png` in `labels_dir` of the photo's size,
    holding ids in 0..num_classes-1 or 255 (after `reduce_labels`).
    """
    labels_dir = os.fspath(labels_dir)
    if not os.path.isdir(labels_dir):
        raise InputError(
            f"--labels {labels_dir!r} is not a folder; give the folder of "
            "PNG masks named like the photos."
        )
    found = {}
    for photo in photos:
        path = label_path(labels_dir, photo)
        if not os.path.isfile(path):
            raise InputError(
                f"Photo {os.fspath(photo)!r} has no label mask: expected "
                f"{path!r}. Add it, or remove the photo from the set."
            )
        mask = read_label(path, reduce_labels)
        size = _photo_size(photo)
        if mask.shape != tuple(size):
            raise InputError(
                f"Label mask {path!r} is {mask.shape[1]}x{mask.shape[0]} "
                f"but its photo {os.fspath(photo)!r} is {size[1]}x{size[0]}"
                "; a mask labels every pixel of its photo at its size."
            )
        bad = (mask != IGNORE_INDEX) & ((mask < 0) | (mask >= num_classes))
        if bad.any():
            ids = sorted(set(mask[bad].tolist()))[:8]
            hint = (
                " (ADE20K-style masks, 0 = other: pass --reduce-labels)"
                if not reduce_labels and num_classes in ids
                else ""
            )
            raise InputError(
                f"Label mask {path!r} holds class ids {ids} outside the "
                f"model's 0..{num_classes - 1} (255 = ignored){hint}. Use "
                "masks of the model's dataset."
            )
        found[os.fspath(photo)] = path
    return found
