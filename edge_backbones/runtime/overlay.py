"""A class map drawn over its photo, with a legend: a segmentation a
person can check at a glance.

`palette` is fixed (the same class has the same colour in every picture,
run and model); `overlay_image` blends the class map, enlarged with
nearest-neighbour (class boundaries stay crisp), over the photo and puts
a legend of the classes covering the most pixels beside it.
"""

import numpy as np

__all__ = ["LEGEND_ROWS", "overlay_image", "palette", "top_classes"]

# the classes a legend lists (by pixel share); the rest are "other"
LEGEND_ROWS = 8
_ALPHA = 0.55
_ROW_HEIGHT = 26
_LEGEND_WIDTH = 260


def palette(num_colors=256):
    """(num_colors, 3) uint8 RGB: PASCAL VOC's bit-interleaved palette,
    whose neighbouring ids differ in colour."""
    ids = np.arange(num_colors)
    colors = np.zeros((num_colors, 3), np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (ids >> (3 * shift + channel)) & 1
            colors[:, channel] |= bit << (7 - shift)
    return colors.astype(np.uint8)


def top_classes(classes, limit=LEGEND_ROWS):
    """[(class id, share of pixels)] of the `limit` most common classes."""
    ids, counts = np.unique(np.asarray(classes), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:limit]
    total = counts.sum()
    return [(int(ids[i]), float(counts[i] / total)) for i in order]


def _legend(height, rows, class_names, colors):
    import cv2

    legend = np.full((height, _LEGEND_WIDTH, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for row, (class_id, share) in enumerate(rows):
        top = 8 + row * _ROW_HEIGHT
        if top + _ROW_HEIGHT > height:
            break
        color = tuple(int(c) for c in colors[class_id % len(colors)])
        cv2.rectangle(legend, (8, top), (30, top + 18), color, cv2.FILLED)
        cv2.rectangle(legend, (8, top), (30, top + 18), (0, 0, 0), 1)
        name = (
            class_names[class_id]
            if class_names and class_id < len(class_names)
            else f"class {class_id}"
        )
        text = f"{name[:22]} {100 * share:.1f}%"
        cv2.putText(
            legend, text, (38, top + 14), font, 0.45, (0, 0, 0), 1,
            cv2.LINE_AA,
        )  # fmt: skip
    return legend


def overlay_image(image, classes, class_names=None, alpha=_ALPHA):
    """The RGB photo with `classes` blended over it and a legend beside it.

    `image` is (H, W, 3) uint8 RGB; `classes` an (h, w) or (1, h, w) class
    map at any size (resized to the photo's with nearest-neighbour);
    `class_names[i]` names class i in the legend.
    """
    import cv2

    image = np.asarray(image, np.uint8)
    classes = np.asarray(classes)
    if classes.ndim == 3 and classes.shape[0] == 1:
        classes = classes[0]
    if classes.ndim != 2:
        raise ValueError(
            f"a class map is (height, width); got shape {classes.shape}."
        )
    height, width = image.shape[:2]
    classes = cv2.resize(
        classes.astype(np.int32).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_NEAREST,
    ).astype(np.int64)
    colors = palette()
    painted = colors[classes % len(colors)]
    blended = np.round(
        (1 - alpha) * image.astype(np.float32) + alpha * painted
    ).astype(np.uint8)
    legend_height = max(height, 16 + LEGEND_ROWS * _ROW_HEIGHT)
    canvas = np.full((legend_height, width, 3), 255, np.uint8)
    canvas[:height] = blended
    legend = _legend(legend_height, top_classes(classes), class_names, colors)
    return np.concatenate([canvas, legend], axis=1)
