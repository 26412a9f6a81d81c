"""Golden files for the Kotlin `:core` tests, made by the Python package.

Exports tiny MiT backbones (random weights) as every artifact kind the app
runs, runs them with `edge_backbones.runtime` on a bundled photo, and writes
what each step produced, so `:core` must reproduce it:

- `image_rgb.bin`: the photo decoded to uint8 RGB (EXIF applied);
- per artifact `<kind>.json` (the exporter's sidecar, as the app bundles
  it), `<kind>.tflite`, and under `<kind>/`: the preprocessed input
  (`input.bin`, float32 or uint8 pixels), the quantized input bytes
  (`input_q.bin`, only for integer inputs), the raw output tensors
  (`raw_<level>.bin`) and the dequantized pyramid (`deq_<level>.bin`);
- `resize/` and `preprocess/`: OpenCV resizes and `preprocess` results for
  every resize policy and interpolation `:core` implements, on odd sizes;
- `stats.json`: level statistics, the channel-norm map and latency
  summaries (`runtime.bench.latency_stats`) computed with numpy;
- `segmenter/`: a tiny random SegFormer exported for the `cpu` target, its
  raw `classes` and `logits` on the photo and the class-map overlay
  `runtime/overlay.py` draws from them;
- `sam/`: a tiny random SAM pair exported by the CLI, and per prompt
  (taps, a box, a mask input) the decoder's input arrays `SamPredictor`
  built, its raw outputs, the upscaled logits, the masks and the tinted
  picture `edge-backbones segment` draws (with the pixels its outline
  covers, which the app draws itself).

`index.json` names every array with its dtype and shape. Arrays are raw
little-endian bytes in C order: Kotlin reads them without a library.

    PYTHONPATH=. python android_demo/tools/make_goldens.py --out DIR
"""

import argparse
import concurrent.futures
import contextlib
import io
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

__all__ = [
    "ARTIFACT_KINDS",
    "TINY_MIT",
    "export_kinds",
    "level_stats",
    "channel_norm_map",
    "main",
]

IMAGE_SIZE = "32x64"  # non-square, as phones' photos are
PHOTO = "grace_hopper.jpg"
# the repository root: the tiny configs and the tiny SAM checkpoint are
# the tests' own (tests/tiny.py)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
sys.path.insert(0, _ROOT)
from tests.tiny import TINY_MIT_TWO_STAGES as TINY_MIT  # noqa: E402
from tests.tiny import (  # noqa: E402
    TINY_SEGFORMER,
    save_tiny_sam_model,
)

SEGMENTER_CLASSES = ["wall", "floor", "sky", "tree", "person"]
SEGMENTER_SIZE = "64x64"
SAM_SIZE = "64"
# a crop of the photo, not square and larger than the encoder's input:
# prompts go through the longest-side resize and masks come back up
SAM_PHOTO = (75, 61)
# name -> (points, labels, box, mask input from, multimask); photo pixels
SAM_PROMPTS = {
    "tap": ([[20.5, 31.25]], [1], None, None, True),
    "taps_and_box": ([[30, 40], [12.75, 8]], [1, 0], [5, 6.5, 50, 70], None,
                     True),
    "box": (None, None, [0, 0, 61, 75], None, True),
    "full": ([[1, 2], [60, 74], [33.3, 0], [0, 75]], [1, 1, 0, 1], None,
             None, True),
    "tap_refined": ([[20.5, 31.25]], [1], None, "tap", False),
}  # fmt: skip
# kind -> export() arguments; each kind is one artifact the app can bundle
# (npu_int8: LiteRT 2.3's Kotlin TensorBuffer has no int16 read or write,
# so the app cannot bind the a16w8 `npu` target's int16 I/O)
ARTIFACT_KINDS = {
    "fp32": {"modes": "fp32"},
    "cpu": {"targets": "cpu"},
    "gpu": {"targets": "gpu"},
    "npu_int8": {"targets": "npu_int8", "io_dtype": "int8"},
    "npu_uint8_pixels": {
        "targets": "npu_int8",
        "io_dtype": "uint8",
        "pixels_in_graph": True,
    },
}
# tiny random models: the gates check the plumbing, not the accuracy
_THRESHOLDS = {"npu_int8": 0.9, "cpu": 0.99, "gpu": 0.99, "fp32": 0.999}
# (source crop height, width) -> (target height, width): down, up, mixed
_RESIZE_CASES = [
    ((600, 512), (32, 64)),
    ((600, 512), (37, 53)),
    ((600, 512), (300, 256)),  # exact 2x: OpenCV's area shortcut
    ((41, 29), (97, 70)),
    ((41, 29), (20, 71)),
    ((5, 3), (9, 4)),
]
_PREPROCESS_CASES = {
    "stretch_linear": {"resize": "stretch"},
    "stretch_nearest": {"resize": "stretch", "interpolation": "nearest"},
    "pad_linear": {"resize": "longest_side_pad"},
    "pad_linear_bgr": {"resize": "longest_side_pad", "color_order": "BGR"},
    "pad_pixels": {"resize": "longest_side_pad", "pixels_in_graph": True},
}
_PREPROCESS_SIZES = [(32, 64), (45, 30), (64, 64)]
_NORMALIZATION = {
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}
# durations (s) with ties, outliers and an even count: percentiles that
# interpolate between ranks
_LATENCY_CASES = {
    "ten": [0.012, 0.0105, 0.011, 0.05, 0.0101, 0.0099, 0.0102, 0.0103,
            0.0104, 0.0098],
    "one": [0.0042],
    "two": [0.003, 0.001],
    "seven": [0.2, 0.1, 0.1, 0.3, 0.15, 0.12, 0.11],
}  # fmt: skip


class _Writer:
    """Writes arrays under `root` and records them in `index.json`."""

    def __init__(self, root):
        self.root = root
        self.index = {}

    def array(self, name, array):
        array = np.ascontiguousarray(array)
        path = os.path.join(self.root, name + ".bin")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        array.astype(array.dtype.newbyteorder("<")).tofile(path)
        self.index[name] = {
            "dtype": array.dtype.name,
            "shape": list(array.shape),
        }

    def json(self, name, data):
        with open(os.path.join(self.root, name), "w") as f:
            json.dump(data, f, indent=1, allow_nan=False)

    def close(self):
        self.json("index.json", self.index)


def export_kinds(calibration, out, kinds=ARTIFACT_KINDS):
    """Exports each kind of tiny MiT; returns {kind: .tflite path}."""
    from edge_backbones.core.image_sets import CalibrationWarning
    from edge_backbones.exporter.pipeline import export

    paths = {}
    for kind, options in kinds.items():
        folder = os.path.join(out, kind)
        # 8 photos on purpose: these goldens test plumbing, not accuracy
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            (record,) = export(
                "mit_b0",
                image_size=IMAGE_SIZE,
                calibration=calibration,
                out=folder,
                random_weights=True,
                config=TINY_MIT,
                name="mit_tiny",
                thresholds=_THRESHOLDS,
                max_images=8,
                num_threads=1,
                **options,
            )
        paths[kind] = record.path
    return paths


def level_stats(level):
    """What `:core` shows per level: float64 statistics of a float32 map."""
    values = np.asarray(level, np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "mean_abs": float(np.abs(values).mean()),
        "zero_fraction": float((values == 0).mean()),
    }


def channel_norm_map(level):
    """(1, H, W, C) -> (H, W) L2 norm over channels, in float64."""
    values = np.asarray(level, np.float64)[0]
    return np.sqrt((values * values).sum(-1))


def _write_model(writer, kind, path, pixels):
    from edge_backbones.runtime.edge_model import EdgeModel
    from edge_backbones.runtime.metadata import sidecar_path

    model = EdgeModel(path, num_threads=1)
    shutil.copy(sidecar_path(path), os.path.join(writer.root, kind + ".json"))
    shutil.copy(path, os.path.join(writer.root, kind + ".tflite"))
    x = model.preprocess(pixels)
    writer.array(f"{kind}/input", x)
    quantized = model._to_input(x)  # noqa: SLF001 - the bytes it feeds
    if quantized.dtype != x.dtype or model.input_spec.quantization:
        writer.array(f"{kind}/input_q", quantized)
    raw = model._engine.run(quantized)  # noqa: SLF001 - before dequantizing
    pyramid = model(x)
    stats = {}
    for (name, _, _), value in zip(model._dequantize, raw, strict=True):  # noqa: SLF001
        writer.array(f"{kind}/raw_{name}", value)
        writer.array(f"{kind}/deq_{name}", pyramid[name])
        writer.array(f"{kind}/norm_{name}", channel_norm_map(pyramid[name]))
        stats[name] = level_stats(pyramid[name])
    return stats


def _write_resizes(writer, rgb):
    import cv2

    flags = {"linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}
    cases = []
    for (crop_h, crop_w), (height, width) in _RESIZE_CASES:
        source = np.ascontiguousarray(rgb[:crop_h, :crop_w])
        for name, flag in flags.items():
            stem = f"resize/{crop_h}x{crop_w}_to_{height}x{width}_{name}"
            writer.array(stem, cv2.resize(source, (width, height),
                                          interpolation=flag))  # fmt: skip
            cases.append(
                {"array": stem, "crop": [crop_h, crop_w],
                 "size": [height, width], "interpolation": name}
            )  # fmt: skip
    return cases


def _write_preprocessing(writer, rgb):
    from edge_backbones.runtime.preprocess import preprocess

    cases = []
    for case, spec in _PREPROCESS_CASES.items():
        spec = {**_NORMALIZATION, **spec}
        for height, width in _PREPROCESS_SIZES:
            stem = f"preprocess/{case}_{height}x{width}"
            writer.array(stem, preprocess(rgb, spec, (height, width)))
            cases.append({"array": stem, "spec": spec, "size": [height, width]})
    return cases


def _write_overlay(writer, rgb):
    """A class map over a crop of the photo, as runtime/overlay.py draws it:
    the crop, the map (a size that does not divide it), the palette, the
    blended pixels and the legend rows the app must compute."""
    from edge_backbones.runtime.overlay import (
        overlay_image,
        palette,
        top_classes,
    )

    photo = np.ascontiguousarray(rgb[:37, :53])
    rng = np.random.default_rng(0)
    # blocks of classes, one id past the names (a legend says "class 12")
    classes = rng.integers(0, 13, (7, 9)).astype(np.int32)
    classes[:3, :4] = 3
    names = [f"thing {i}" for i in range(12)]
    drawn = overlay_image(photo, classes, names)
    writer.array("overlay/photo", photo)
    writer.array("overlay/classes", classes)
    writer.array("overlay/palette", palette())
    writer.array("overlay/blended", drawn[: photo.shape[0], : photo.shape[1]])
    import cv2

    resized = cv2.resize(
        classes.astype(np.float32),
        (photo.shape[1], photo.shape[0]),
        interpolation=cv2.INTER_NEAREST,
    ).astype(np.int64)
    return {
        "class_names": names,
        "legend": [
            [i, names[i] if i < len(names) else f"class {i}", share]
            for i, share in top_classes(resized)
        ],
    }


def _write_segmenter(writer, rgb, calibration, work):
    """A tiny random SegFormer exported for the cpu target, run on the
    photo: its raw outputs by name and the overlay drawn from them."""
    import torch
    import transformers

    from edge_backbones.core.image_sets import CalibrationWarning
    from edge_backbones.exporter.pipeline import export
    from edge_backbones.runtime.edge_model import EdgeModel
    from edge_backbones.runtime.metadata import sidecar_path
    from edge_backbones.runtime.overlay import overlay_image, top_classes

    torch.manual_seed(0)
    config = transformers.SegformerConfig(
        **TINY_SEGFORMER, id2label=dict(enumerate(SEGMENTER_CLASSES))
    )
    checkpoint = os.path.join(work, "segformer_tiny")
    transformers.SegformerForSemanticSegmentation(config).save_pretrained(
        checkpoint, safe_serialization=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        (record,) = export(
            checkpoint,
            image_size=SEGMENTER_SIZE,
            targets="cpu",
            calibration=calibration,
            out=os.path.join(work, "segmenter"),
            name="segformer_tiny",
            thresholds={"cpu": 0.99},
            mask_thresholds={"cpu": 0.9},
            max_images=8,
            num_threads=1,
        )
    shutil.copy(
        sidecar_path(record.path), os.path.join(writer.root, "segmenter.json")
    )
    shutil.copy(record.path, os.path.join(writer.root, "segmenter.tflite"))
    model = EdgeModel(record.path, num_threads=1)
    raw = model._engine.run(model._to_input(model.preprocess(rgb)))  # noqa: SLF001 - as LiteRT hands them over
    outputs = {}
    for (name, _, _), value in zip(model._dequantize, raw, strict=True):  # noqa: SLF001
        writer.array(f"segmenter/raw_{name}", value)
        outputs[name] = value
    classes = outputs["classes"][0]
    photo = np.ascontiguousarray(rgb[:75, :61])
    drawn = overlay_image(photo, classes, SEGMENTER_CLASSES)
    writer.array("segmenter/photo", photo)
    writer.array("segmenter/blended", drawn[: photo.shape[0], : photo.shape[1]])
    import cv2

    resized = cv2.resize(
        classes.astype(np.float32), (photo.shape[1], photo.shape[0]),
        interpolation=cv2.INTER_NEAREST,
    ).astype(np.int64)  # fmt: skip
    return {
        "legend": [
            [i, SEGMENTER_CLASSES[i], share]
            for i, share in top_classes(resized)
        ],
    }


class _RecordingDecoder:
    """The predictor's decoder, keeping what it was given and returned."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.calls = []

    def __call__(self, **arrays):
        outputs = self.decoder(**arrays)
        self.calls.append((arrays, outputs))
        return outputs


def _export_sam(calibration, work):
    """A tiny random SamModel exported by the CLI: (encoder, decoder)."""
    from edge_backbones.cli import main as cli

    checkpoint = os.path.join(work, "sam_tiny")
    save_tiny_sam_model(checkpoint)
    out = os.path.join(work, "sam")
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        code = cli(
            ["export", checkpoint, "--image-size", SAM_SIZE, "--modes",
             "fp32", "--calibration", calibration, "--max-images", "8",
             "--threads", "1", "--out", out]
        )  # fmt: skip
    if code != 0:
        raise RuntimeError(f"SAM export failed ({code}):\n{log.getvalue()}")
    stem = os.path.join(out, f"sam_tiny_{SAM_SIZE}x{SAM_SIZE}")
    return f"{stem}_fp32.tflite", f"{stem}_decoder_fp32.tflite"


def _sam_outline(mask):
    """The pixels `edge-backbones segment` paints with the mask's outline
    (its contours, 2 px): the app draws the outline itself."""
    import cv2

    outline = np.zeros(mask.shape, np.uint8)
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    cv2.drawContours(outline, contours, -1, 1, 2)
    return outline


def _write_sam(writer, rgb, encoder, decoder):
    """Per prompt: the decoder's inputs and outputs, upscaled logits,
    masks and the mask pictures, from `SamPredictor` on a tiny pair."""
    import cv2

    from edge_backbones.runtime.metadata import sidecar_path
    from edge_backbones.runtime.sam_cli import overlay
    from edge_backbones.runtime.sam_predictor import SamPredictor

    for name, path in (("sam_encoder", encoder), ("sam_decoder", decoder)):
        shutil.copy(
            sidecar_path(path), os.path.join(writer.root, name + ".json")
        )
        shutil.copy(path, os.path.join(writer.root, name + ".tflite"))
    predictor = SamPredictor(encoder, decoder, num_threads=1)
    recorder = _RecordingDecoder(predictor.decoder)
    predictor.decoder = recorder
    height, width = SAM_PHOTO
    photo = np.ascontiguousarray(rgb[:height, :width])
    predictor.set_image(photo)
    writer.array("sam/photo", photo)
    cases = {}
    low_res = {}
    for name, prompt in SAM_PROMPTS.items():
        points, labels, box, mask_from, multimask = prompt
        mask_input = None if mask_from is None else low_res[mask_from]
        result = predictor.predict(
            points=points, labels=labels, box=box, mask_input=mask_input,
            multimask=multimask,
        )  # fmt: skip
        arrays, outputs = recorder.calls[-1]
        for key in ("point_coords", "point_labels", "mask_input",
                    "has_mask_input"):  # fmt: skip
            writer.array(f"sam/{name}/{key}", np.asarray(arrays[key]))
        for key, value in outputs.items():
            writer.array(f"sam/{name}/raw_{key}", value)
        best = int(np.argmax(result.scores))
        low_res[name] = result.low_res_logits[best]
        writer.array(f"sam/{name}/scores", result.scores)
        writer.array(
            f"sam/{name}/upscaled",
            predictor.upscale_logits(result.low_res_logits),
        )
        writer.array(f"sam/{name}/masks", result.masks.astype(np.uint8))
        # every mask, not only the best: a thin one is mostly outline
        for k, mask in enumerate(result.masks):
            picture = overlay(photo, mask)
            writer.array(
                f"sam/{name}/overlay_{k}",
                cv2.cvtColor(picture, cv2.COLOR_BGR2RGB),
            )
            writer.array(f"sam/{name}/outline_{k}", _sam_outline(mask))
        cases[name] = {
            "points": points or [],
            "labels": labels or [],
            "box": box,
            "mask_input_from": mask_from,
            "multimask": multimask,
            "best": best,
        }
    return cases


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder to (re)write")
    parser.add_argument(
        "--calibration", default="calibration", help="bundled photos"
    )
    args = parser.parse_args(argv)
    from edge_backbones.runtime.bench import latency_stats
    from edge_backbones.runtime.preprocess import load_image

    started = time.perf_counter()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    writer = _Writer(args.out)
    rgb = load_image(os.path.join(args.calibration, PHOTO))
    writer.array("image_rgb", rgb)
    summary = {
        "photo": PHOTO,
        "resize": _write_resizes(writer, rgb),
        "preprocess": _write_preprocessing(writer, rgb),
        "overlay": _write_overlay(writer, rgb),
        "latency": {
            name: {"seconds": values, "stats": latency_stats(values)}
            for name, values in _LATENCY_CASES.items()
        },
        "models": {},
    }
    with (
        tempfile.TemporaryDirectory() as work,
        # the SAM pair converts in a second process meanwhile: the stage's
        # time is mostly single-threaded conversion
        concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")
        ) as pool,
    ):
        sam_pair = pool.submit(_export_sam, args.calibration, work)
        summary["segmenter"] = _write_segmenter(
            writer, rgb, args.calibration, work
        )
        paths = export_kinds(args.calibration, work)
        for kind, path in paths.items():
            summary["models"][kind] = {
                "levels": _write_model(writer, kind, path, rgb)
            }
        summary["sam"] = _write_sam(writer, rgb, *sam_pair.result())
    writer.json("stats.json", summary)
    writer.close()
    print(
        f"goldens: {len(writer.index)} arrays in {args.out} "
        f"({time.perf_counter() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
