"""`edge-backbones segment`: a mask from clicks and a box on a photo.

Runtime only (numpy, OpenCV, a TFLite interpreter); nothing is imported
until the command runs.
"""

import argparse
from collections.abc import Sequence
from typing import Any

from edge_backbones import native_logs

__all__ = ["add_parsers", "overlay", "parse_box", "parse_point"]

# BGR, as OpenCV draws
_MASK_COLOUR = (255, 144, 30)
_FOREGROUND, _BACKGROUND, _BOX = (0, 220, 0), (0, 0, 230), (0, 200, 255)


def _numbers(text: str, count: int, flag: str, example: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        raise argparse.ArgumentTypeError(
            f"{flag} {text!r}: give {count} comma-separated pixel "
            f"coordinates, e.g. {flag} {example}."
        )
    return values


def parse_point(text: str) -> list[float]:
    """argparse type: "X,Y" -> [x, y]."""
    return _numbers(text, 2, "--point", "120,80")


def parse_box(text: str) -> list[float]:
    """argparse type: "x0,y0,x1,y1" -> [x0, y0, x1, y1]."""
    return _numbers(text, 4, "--box", "10,20,200,180")


def overlay(
    pixels: Any,
    mask: Any,
    points: Sequence[Sequence[float]] = (),
    labels: Sequence[int] = (),
    box: Sequence[float] | None = None,
) -> Any:
    """RGB `pixels` with `mask` tinted and the prompt drawn -> BGR uint8."""
    import cv2
    import numpy as np

    picture = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR).astype(np.float32)
    tint = np.array(_MASK_COLOUR, np.float32)
    picture[mask] = 0.45 * picture[mask] + 0.55 * tint
    picture = picture.astype(np.uint8)
    outline = mask.astype(np.uint8)
    contours, _ = cv2.findContours(
        outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    cv2.drawContours(picture, contours, -1, _MASK_COLOUR, 2)
    radius = max(3, round(max(pixels.shape[:2]) / 120))
    for (x, y), label in zip(points, labels, strict=True):
        colour = _FOREGROUND if label == 1 else _BACKGROUND
        centre = (round(x), round(y))
        cv2.circle(picture, centre, radius + 2, (255, 255, 255), -1)
        cv2.circle(picture, centre, radius, colour, -1)
    if box is not None:
        x0, y0, x1, y1 = (round(v) for v in box)
        cv2.rectangle(picture, (x0, y0), (x1, y1), _BOX, 2)
    return picture


def _segment(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from edge_backbones.atomic_io import write_file_atomic
    from edge_backbones.errors import InputError
    from edge_backbones.runtime.cli import check_output_path
    from edge_backbones.runtime.preprocess import load_image
    from edge_backbones.runtime.sam_predictor import SamPredictor

    check_output_path("--out", args.out, [args.encoder, args.decoder], ".png")
    points = args.point or []
    labels = [1] * len(points) + [0] * len(args.negative or [])
    points = points + (args.negative or [])
    predictor = SamPredictor(args.encoder, args.decoder, args.threads)
    pixels = load_image(args.photo)
    predictor.set_image(pixels)
    result = predictor.predict(
        points=np.array(points) if points else None,
        labels=np.array(labels) if points else None,
        box=args.box,
        multimask=not args.single_mask,
    )
    best = int(np.argmax(result.scores))
    mask = result.masks[best]
    picture = overlay(pixels, mask, points, labels, args.box)
    ok, encoded = cv2.imencode(".png", picture)
    if not ok:
        raise InputError(f"could not encode {args.out!r} as PNG.")
    write_file_atomic(args.out, encoded.tobytes())
    print(
        f"mask {best} of {len(result.scores)}: predicted IoU "
        f"{float(result.scores[best]):.3f}, {int(mask.sum())} of "
        f"{mask.size} pixels"
    )
    print(f"saved     {args.out}")
    return 0


def add_parsers(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="mask a photo from clicks and/or a box (SAM encoder+decoder)",
        description=(
            "Runs a SAM encoder and decoder exported by edge-backbones on a "
            "photo and writes the best mask over it, with the prompt drawn."
        ),
    )
    parser.add_argument("encoder", help="the SAM encoder .tflite")
    parser.add_argument("decoder", help="the SAM decoder .tflite")
    parser.add_argument("photo", help="the photo (JPEG, PNG, ...)")
    parser.add_argument(
        "--point", action="append", type=parse_point, metavar="X,Y",
        help="a foreground click in photo pixels (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--negative", action="append", type=parse_point, metavar="X,Y",
        help="a background click in photo pixels (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--box", type=parse_box, metavar="x0,y0,x1,y1",
        help="a box around the object, in photo pixels",
    )  # fmt: skip
    parser.add_argument(
        "--single-mask", action="store_true",
        help="ask for SAM's single mask instead of the best of three",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--out", required=True, help="the overlay picture (.png) to write"
    )
    native_logs.add_verbose_argument(parser)
    parser.set_defaults(func=_segment)
