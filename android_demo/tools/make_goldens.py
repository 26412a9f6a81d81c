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
  summaries (`runtime.bench.latency_stats`) computed with numpy.

`index.json` names every array with its dtype and shape. Arrays are raw
little-endian bytes in C order: Kotlin reads them without a library.

    PYTHONPATH=. python android_demo/tools/make_goldens.py --out DIR
"""

import argparse
import json
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

# tests/tiny.py's TINY_MIT_TWO_STAGES: two levels, 8 and 16 channels
TINY_MIT = {
    "depths": [1, 1],
    "num_layers": 2,
    "blockwise_num_heads": [1, 1],
    "blockwise_sr_ratios": [2, 1],
    "max_drop_path_rate": 0.0,
    "patch_sizes": [7, 3],
    "strides": [4, 2],
    "hidden_dims": [8, 16],
}
IMAGE_SIZE = "32x64"  # non-square, as phones' photos are
PHOTO = "grace_hopper.jpg"
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
    with tempfile.TemporaryDirectory() as work:
        paths = export_kinds(args.calibration, work)
        for kind, path in paths.items():
            summary["models"][kind] = {
                "levels": _write_model(writer, kind, path, rgb)
            }
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
