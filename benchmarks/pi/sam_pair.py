"""The tiny SAM pair on the emulated Pi: exported on x86, run through
`SamPredictor` here and there, scored by mask IoU against x86.

`export(OUT)` (x86, needs the `export` extra and torch/transformers)
writes a tiny random `SamModel`'s encoder + decoder at 64x64 in fp32 and
`int8_mixed` into OUT/artifacts, and two bundled photos into OUT/photos.
`record(OUT, NAME, backend)` runs every pair on those photos x four fixed
prompts (points, a box, both; each again with its first mask as
`mask_input`) and saves masks,
scores and low-resolution logits as OUT/NAME.npz: runtime only (numpy
and a TFLite interpreter), so the Pi runs it too; tests/device compares
its run with x86's (`mask_ious`).

    python benchmarks/pi/sam_pair.py export OUT
    python benchmarks/pi/sam_pair.py record OUT NAME [--backend B]
"""

import argparse
import json
import pathlib
import shutil
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SIZE = 64
MODES = ("fp32", "int8_mixed")
PHOTOS = ("astronaut.jpg", "coffee.jpg")
# in each photo's own pixels, as fractions of (width, height)
PROMPTS = (
    {"points": [[0.5, 0.4]], "labels": [1]},
    {"points": [[0.3, 0.6], [0.7, 0.3]], "labels": [1, 0]},
    {"box": [0.2, 0.2, 0.8, 0.7]},
    {"points": [[0.45, 0.5]], "labels": [1], "box": [0.25, 0.3, 0.75, 0.8]},
)


def export(out):
    """Writes the pair per mode into `out`/artifacts (x86)."""
    from edge_backbones.errors import FidelityError
    from edge_backbones.exporter import export as run_export
    from tests.tiny import save_tiny_sam_model

    photos = pathlib.Path(out) / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for photo in PHOTOS:  # the Pi has the outputs folder, not the repo
        shutil.copyfile(REPO / "calibration" / photo, photos / photo)
    checkpoint = pathlib.Path(out) / "checkpoint" / "tiny_sam"
    save_tiny_sam_model(str(checkpoint))
    try:
        run_export(
            str(checkpoint),
            image_size=SIZE,
            modes=list(MODES),
            calibration=REPO / "calibration",
            max_images=8,
            out=pathlib.Path(out) / "artifacts",
            # random weights: gates that catch a broken export only
            thresholds={"int8_mixed": 0.9},
        )
    except FidelityError as exc:
        # a decoder outside its registry gate is not written; what ARM
        # computes is compared for the pairs that were
        print(f"sam: {exc}", file=sys.stderr)


def pairs(out):
    """{mode: (encoder, decoder)} of the pairs in `out`/artifacts."""
    folder = pathlib.Path(out) / "artifacts"
    found = {}
    for mode in MODES:
        encoder = folder / f"tiny_sam_{SIZE}x{SIZE}_{mode}.tflite"
        decoder = folder / f"tiny_sam_{SIZE}x{SIZE}_decoder_{mode}.tflite"
        if encoder.exists() and decoder.exists():
            found[mode] = (encoder, decoder)
    return found


def predictions(out, backend=None):
    """{"mode/photo/prompt/what": array} of every pair through
    `SamPredictor` on `backend` (masks, scores, low_res_logits; the last
    prompt again with its first mask's logits as mask_input)."""
    from edge_backbones.runtime import SamPredictor
    from edge_backbones.runtime.edge_model import EdgeModel
    from edge_backbones.runtime.preprocess import load_image
    from edge_backbones.runtime.sam_predictor import SignatureModel

    arrays = {}
    for mode, (encoder, decoder) in pairs(out).items():
        predictor = SamPredictor(
            EdgeModel(encoder, backend=backend),
            SignatureModel(decoder, backend=backend),
        )
        for photo in PHOTOS:
            pixels = load_image(str(pathlib.Path(out) / "photos" / photo))
            predictor.set_image(pixels)
            height, width = pixels.shape[:2]
            scale = np.array([width, height], np.float64)
            for index, prompt in enumerate(PROMPTS):
                kwargs = {}
                if "points" in prompt:
                    kwargs["points"] = np.array(prompt["points"]) * scale
                    kwargs["labels"] = prompt["labels"]
                if "box" in prompt:
                    kwargs["box"] = np.array(prompt["box"]) * np.tile(scale, 2)
                result = predictor.predict(**kwargs)
                again = predictor.predict(
                    **kwargs, mask_input=result.low_res_logits[0]
                )
                for name, got in (("", result), ("refined_", again)):
                    key = f"{mode}/{photo}/{index}/{name}"
                    arrays[key + "masks"] = got.masks
                    arrays[key + "scores"] = got.scores
                    arrays[key + "low_res_logits"] = got.low_res_logits
    return arrays


def record(out, name, backend=None):
    """Saves `predictions` as `out`/`name`.npz (+ a .json of its keys)."""
    from edge_backbones.atomic_io import write_file_atomic
    from edge_backbones.runtime import parity

    arrays = predictions(out, backend)
    if not arrays:
        raise SystemExit(f"no SAM pairs in {out}/artifacts")
    parity.save_arrays(pathlib.Path(out) / f"{name}.npz", arrays)
    write_file_atomic(
        str(pathlib.Path(out) / f"{name}.json"),
        json.dumps({"backend": backend, "keys": sorted(arrays)}),
    )
    return arrays


def mask_ious(here, reference):
    """{"mode/photo/prompt/[refined_]masks": IoU per mask} of two
    `predictions` (`core.mask_metrics.mask_iou`)."""
    from edge_backbones.core.mask_metrics import mask_iou

    return {
        key: mask_iou(masks, reference[key])
        for key, masks in here.items()
        if key.endswith("masks")
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["export", "record"])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("name", nargs="?", default="x86")
    parser.add_argument("--backend", default=None)
    args = parser.parse_args(argv)
    if args.step == "export":
        export(args.out)
    else:
        arrays = record(args.out, args.name, args.backend)
        print(f"sam: {len(arrays)} arrays saved as {args.out}/{args.name}")


if __name__ == "__main__":
    main()
