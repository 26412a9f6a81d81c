"""`edge-backbones run` and `edge-backbones bench`: the runtime's commands.

Both work on a device with only the runtime installed (numpy, OpenCV and a
TFLite interpreter); nothing is imported until a command runs.
"""

import argparse
import collections
import itertools
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from edge_backbones import native_logs
from edge_backbones.text import split_commas

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["add_parsers", "check_output_path", "thread_counts"]

# height in pixels of each panel of the --save-png picture
_PANEL_HEIGHT = 256
# a segmenter's class-map output (models.segformer.CLASSES; the runtime
# does not import models)
CLASSES = "classes"


def thread_counts(text: str) -> list[int]:
    """argparse type: "1,2,4" -> [1, 2, 4], each >= 1."""
    try:
        values = [int(v) for v in split_commas(text)]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"--threads {text!r}: give thread counts >= 1, comma separated, "
            "e.g. 1,2,4."
        )
    return values


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"--preprocessing is not JSON ({exc}); e.g. "
            '\'{"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}\''
        ) from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"--preprocessing must be a JSON object; got {text!r}."
        )
    return value


def check_output_path(
    flag: str, path: str, models: Iterable[str], suffix: str
) -> None:
    """Raises InputError if writing `path` would destroy a model or its
    sidecar, or cannot work (a folder; an unwritable parent). Checked
    before any model runs.

    Raises:
        InputError: `path` is a model, a sidecar, a folder, or unwritable.
    """
    from edge_backbones.errors import InputError
    from edge_backbones.runtime.metadata import sidecar_path

    real = os.path.realpath(path)
    for model in models:
        stem = os.path.splitext(model)[0]
        suggestion = f"e.g. {flag} {stem}{suffix}"
        if real == os.path.realpath(model):
            raise InputError(
                f"{flag} {path!r} is the model file itself; writing there "
                f"would destroy it. Pass another name, {suggestion}."
            )
        if real == os.path.realpath(sidecar_path(model)):
            raise InputError(
                f"{flag} {path!r} is the sidecar of {model!r} (its "
                "metadata and sha256, written at export); writing there "
                f"would replace it. Pass another name, {suggestion}."
            )
    if os.path.isdir(real):
        raise InputError(
            f"{flag} {path!r} is a folder; pass a file name, "
            f"e.g. {os.path.join(path, 'results' + suffix)}."
        )
    parent = os.path.dirname(real)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{flag} {path!r}: the folder {parent!r} does not exist or is "
            "not writable by this user. Pass a path in a folder you can "
            "write to."
        )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delegates",
        type=split_commas,
        default=["xnnpack"],
        help="comma-separated, in order of precedence: xnnpack (default "
        "CPU), cpu (TFLite's builtin optimized kernels), portable (its "
        "reference kernels: slow, the same integers on every CPU), gpu, "
        "nnapi, edgetpu, or a delegate .so path",
    )
    parser.add_argument(
        "--backend",
        choices=("litert", "tflite_runtime", "tf"),
        help="interpreter package (default: the first installed, in this "
        "order)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail if a delegate does not load instead of falling back",
    )


def _model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The EdgeModel keywords that `_add_model_options` parsed."""
    return {
        "delegates": args.delegates,
        "backend": args.backend,
        "strict": args.strict,
    }


def _heatmap_png(
    image: "npt.NDArray[np.uint8]",
    outputs: Mapping[str, "npt.NDArray[Any]"],
    path: str,
) -> None:
    """Input image, then per level a mean-|channel| heatmap, side by side."""
    import cv2
    import numpy as np

    from edge_backbones.atomic_io import write_file_atomic
    from edge_backbones.errors import InputError

    def panel(
        rgb: "npt.NDArray[np.uint8]", label: str, interpolation: int
    ) -> "npt.NDArray[np.uint8]":
        height, width = rgb.shape[:2]
        size = (max(1, round(width * _PANEL_HEIGHT / height)), _PANEL_HEIGHT)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        bgr = np.asarray(cv2.resize(bgr, size, interpolation=interpolation))
        white = (255, 255, 255)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(bgr, label, (6, 20), font, 0.5, white, 1, cv2.LINE_AA)
        return bgr

    # photos shrink smoothly; feature cells stay visible as blocks
    panels = [panel(image, "input", cv2.INTER_AREA)]
    for name, value in outputs.items():
        level = np.abs(value[0]).mean(axis=-1)
        low, high = float(level.min()), float(level.max())
        scaled = (level - low) / (high - low) if high > low else level * 0
        gray = np.round(scaled * 255).astype(np.uint8)
        colored = cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS)[..., ::-1]
        h, w, c = value.shape[1:]
        panels.append(panel(colored, f"{name} {h}x{w}x{c}", cv2.INTER_NEAREST))
    gap = np.full((_PANEL_HEIGHT, 4, 3), 255, np.uint8)
    spaced = [panels[0]]
    for item in panels[1:]:
        spaced += [gap, item]
    picture = cv2.hconcat(spaced)
    _, encoded = cv2.imencode(".png", picture)
    try:
        write_file_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise InputError(
            f"Cannot write the PNG to {path!r} ({exc}). Check that the "
            "folder exists and is writable."
        ) from exc


def _print_npu_numerics(
    compiled: Mapping[str, Any], fidelity: Mapping[str, Any] | None
) -> None:
    """What a compiled artifact's simulated run stands for, and its figures."""
    from edge_backbones.core.fidelity import min_level
    from edge_backbones.runtime.npu_engines import NPU_NUMERICS_LABEL

    print(
        f"compiled  for {compiled['soc']} ({compiled['accelerator']}); "
        f"{NPU_NUMERICS_LABEL}: the vendor's x86 simulation, not device speed"
    )
    for what, figures in (
        ("vs float", fidelity),
        ("vs LiteRT CPU", compiled.get("numerics_vs_cpu")),
    ):
        if figures:
            worst = min_level(figures, "cosine")
            images = figures["images"]
            print(
                f"fidelity  {what}: min cosine {worst:.6f} over {images} "
                "images (at compile time)"
            )


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_backbones.runtime import EdgeModel, load_image

    if args.save_png:
        check_output_path("--save-png", args.save_png, [args.model], ".png")
    if args.overlay:
        check_output_path("--overlay", args.overlay, [args.model], ".png")
    model = EdgeModel(
        args.model,
        num_threads=args.threads,
        preprocessing=args.preprocessing,
        **_model_options(args),
    )
    if args.overlay and CLASSES not in model.output_specs:
        from edge_backbones.errors import InputError

        raise InputError(
            f"--overlay draws a class map, but {args.model!r} outputs "
            f"{sorted(model.output_specs)}, no {CLASSES!r}. Export a "
            "segmenter (a checkpoint with a decode head), or use --save-png."
        )
    image = load_image(args.image)
    outputs = model(model.preprocess(image))
    spec = model.input_spec
    print(f"model     {args.model}")
    print(f"input     {spec.name} {list(spec.shape)} {spec.dtype}")
    print(
        f"runs on   {model.active_delegate} (fully delegated: "
        f"{model.fully_delegated}), backend {model.backend.name}"
    )
    metadata = model.metadata or {}
    compiled = metadata.get("compiled")
    if compiled:
        _print_npu_numerics(compiled, metadata.get("fidelity"))
    if model.cpu_ops:
        counts = collections.Counter(model.cpu_ops).most_common()
        print(
            f"cpu ops   {len(model.cpu_ops)} ops no delegate took: "
            + ", ".join(f"{op} x{n}" for op, n in counts)
        )
    width = max(len(name) for name in outputs)
    for name, value in outputs.items():
        stats = (value.min(), value.max(), value.mean(), value.std())
        print(
            f"{name:<{width}}  {str(list(value.shape)):<18} "
            f"{model.output_specs[name].dtype:<8} "
            + "min {:.4g}  max {:.4g}  mean {:.4g}  std {:.4g}".format(
                *(float(s) for s in stats)
            )
        )
        if not np.isfinite(value).all():
            print(f"warning: {name} has non-finite values", file=sys.stderr)
    if args.save_png:
        _heatmap_png(image, outputs, args.save_png)
        print(f"saved     {args.save_png}")
    if args.overlay:
        task = (model.metadata or {}).get("task") or {}
        _overlay_png(
            image, outputs[CLASSES], task.get("class_names"), args.overlay
        )
        print(f"saved     {args.overlay}")
    return 0


def _overlay_png(
    image: "npt.NDArray[Any]",
    classes: "npt.NDArray[Any]",
    class_names: list[str] | None,
    path: str,
) -> None:
    import cv2

    from edge_backbones.atomic_io import write_file_atomic
    from edge_backbones.errors import InputError
    from edge_backbones.runtime.overlay import overlay_image

    picture = overlay_image(image, classes, class_names)
    _, encoded = cv2.imencode(".png", picture[..., ::-1])
    try:
        write_file_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise InputError(
            f"Cannot write --overlay {path!r} ({exc}). Pass a path in a "
            "folder you can write to."
        ) from exc


def _bench(args: argparse.Namespace) -> int:
    from edge_backbones.runtime.bench import benchmark, format_table

    if args.json:
        check_output_path("--json", args.json, args.models, ".bench.json")
    if args.op_profile:
        return _op_profile(args)
    results = [
        benchmark(
            model,
            num_threads=threads,
            runs=args.runs,
            warmup=args.warmup,
            compare_bare=args.compare_bare,
            **_model_options(args),
        )
        for model, threads in itertools.product(args.models, args.threads)
    ]
    print(format_table(results))
    if args.json:
        _write_json(args.json, {"host": _host(), "results": results})
    return 0


def _op_profile(args: argparse.Namespace) -> int:
    from edge_backbones.runtime.op_profile import format_op_profile, op_profile

    profiles = []
    for model, threads in itertools.product(args.models, args.threads):
        profile = op_profile(
            model,
            num_threads=threads,
            runs=args.runs,
            warmup=args.warmup,
            top=args.top,
        )
        profiles.append(profile)
        print(format_op_profile(profile))
    if args.json:
        _write_json(args.json, {"host": _host(), "op_profiles": profiles})
    return 0


def _host() -> dict[str, Any]:
    from edge_backbones.core.cpuinfo import cpu_record

    return {
        "machine": platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        # flags, clock, peak model: what `silicon` in each result reads
        "cpu": cpu_record(),
    }


def _write_json(path: str, document: object) -> None:
    from edge_backbones.atomic_io import dumps_json, write_file_atomic
    from edge_backbones.errors import InputError

    # a write cut short must not leave half a file where a good one was
    try:
        write_file_atomic(path, dumps_json(document, indent=2))
    except OSError as exc:
        raise InputError(
            f"Cannot write --json {path!r} ({exc}). Pass a path "
            "in a folder you can write to."
        ) from exc
    print(f"wrote {path}")


def add_parsers(subparsers: Any) -> None:
    """Adds `run` and `bench` to the `edge-backbones` command's parsers."""
    run = subparsers.add_parser(
        "run",
        help="run an exported model on one image and print its levels",
        description="Runs a .tflite backbone on one image with the "
        "preprocessing in its metadata and prints each pyramid level's "
        "shape, dtype and value range.",
    )
    run.add_argument("model", help="the .tflite file")
    run.add_argument("image", help="an image file (JPEG, PNG, ...)")
    run.add_argument(
        "--save-png",
        metavar="PATH",
        help="also write the input and a mean-|channel| heatmap per level",
    )
    run.add_argument(
        "--overlay",
        metavar="PATH",
        help="segmenters: write the photo with its class map blended in a "
        "fixed palette and a legend of the top classes (PNG)",
    )
    run.add_argument("--threads", type=int, default=None)
    run.add_argument(
        "--preprocessing",
        type=_json_dict,
        help="preprocessing JSON for models without edge_backbones metadata",
    )
    _add_model_options(run)
    native_logs.add_verbose_argument(run)
    run.set_defaults(func=_run)

    bench = subparsers.add_parser(
        "bench",
        help="time exported models (median, p5, p95, memory)",
        description="Times each model at each thread count after warm-up "
        "runs; prints a table and optionally writes JSON.",
    )
    bench.add_argument("models", nargs="+", help=".tflite files")
    bench.add_argument("--threads", type=thread_counts, default=[1])
    bench.add_argument("--runs", type=int, default=50)
    bench.add_argument("--warmup", type=int, default=5)
    bench.add_argument("--json", metavar="PATH", help="write results here")
    bench.add_argument(
        "--compare-bare",
        action="store_true",
        help="also time bare interpreter.invoke() calls on the same "
        "interpreter and report the wrapper/bare ratio",
    )
    bench.add_argument(
        "--op-profile",
        action="store_true",
        help="time each op alone (a one-op model fed its real inputs) and "
        "print the time per op type and the slowest ops, instead of the "
        "whole-model benchmark; --delegates/--backend do not apply",
    )
    bench.add_argument(
        "--top",
        type=int,
        default=10,
        help="with --op-profile: how many of the slowest ops to list",
    )
    _add_model_options(bench)
    native_logs.add_verbose_argument(bench)
    bench.set_defaults(func=_bench)
