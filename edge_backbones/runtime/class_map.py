"""A segmenter's class map from its logits, on the host.

For artifacts whose graph cannot compute it: TFLite has no int16 ARG_MAX,
so int16-activation artifacts (int16x8, the a16w8 NPU target) output
logits only, and the runtime adds `classes` exactly as the graph's
`ClassMap` would (argmax; `logit > 0` for a one-class head; bilinear
resize first when the class map is at the input's size).
"""

import numpy as np

__all__ = ["CLASSES", "LOGITS", "class_map"]

CLASSES = "classes"
LOGITS = "logits"


def class_map(logits, classes_at="logits", image_size=None):
    """(batch, H, W) uint8 (int32 beyond 256 classes) of (batch, h, w, C)
    logits; `classes_at="input"` resizes them to `image_size` first."""
    logits = np.asarray(logits, np.float32)
    if classes_at == "input":
        import cv2

        height, width = image_size
        # cv2's INTER_LINEAR samples at half-pixel centers, as the graph's
        logits = np.stack(
            [
                cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)
                .reshape(height, width, -1)
                for m in logits
            ]
        )
    num_classes = logits.shape[-1]
    if num_classes == 1:
        classes = logits[..., 0] > 0
    else:
        classes = np.argmax(logits, axis=-1)
    return classes.astype(np.uint8 if num_classes <= 256 else np.int32)
