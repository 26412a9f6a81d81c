"""`edge-backbones export`: the command line face of `export.export()`.

Imports nothing heavy until the command runs.
"""

import sys
from typing import Any

from edge_backbones.text import split_commas

__all__ = ["add_parsers"]


def _thresholds(values):
    out = {}
    for value in values or []:
        mode, _, number = value.partition("=")
        try:
            cosine = float(number)
        except ValueError:
            cosine = None
        if cosine is None or not 0 < cosine <= 1:
            from edge_backbones.errors import InputError

            raise InputError(
                f"--threshold {value!r} is not MODE=COSINE with a minimum "
                "cosine in (0, 1] (e.g. --threshold int8=0.98)."
            )
        out[mode.strip()] = cosine
    return out


def _flags():
    """(flags, argparse keywords) of every export option on the command
    line; the mode and target lists come from the mode registry."""
    from edge_backbones.core import modes

    flag = {"action": "store_true", "default": None}
    return [
        (("--recipe",), {"help": "A TOML recipe (export/*.toml); flags "
                         "given here override it."}),
        (("--image-size",), {"help": "512 (square) or HxW, e.g. 384x640. "
                             "Default: the preset's natural size (mit_b0 "
                             "224, SAM 1024), 512 for other models."}),
        (("--modes",), {"help": "Any of " + ",".join(modes.mode_plans())
                        + " (export/README.md)."}),
        (("--target", "--targets"), {"dest": "targets", "help": ",".join(
            modes.target_plans()) + " recipes."}),
        (("--soc",), {"dest": "socs", "help": "With --target npu: compile "
                      "it for these SoCs (SM8650,SM8750 or intel-cpu) and "
                      "gate on the simulated NPU numerics; needs the npu "
                      "extra."}),
        (("--calibration",), {"help": "A folder of photos."}),
        (("--out",), {"help": "Output folder (default artifacts/)."}),
        (("--random-weights",), {**flag, "help": "Export the architecture "
                                 "with random weights (speed tests)."}),
        (("--min-cos",), {"type": float, "help": "Keep only the fastest "
                          "candidate reaching this cosine."}),
        (("--budget",), {"metavar": "min_cos=C[,max_ms=MS,max_mb=MB]",
                         "help": "Choose each layer's precision (int8 or "
                         "float) for one int8 mode: the fastest graph "
                         "meeting the budget on this machine; its search "
                         "log goes beside it (<stem>.budget.json)."}),
        (("--threshold",), {"action": "append", "metavar": "MODE=COSINE",
                            "help": "Override a mode's minimum cosine "
                            "(repeatable)."}),
        (("--float-layers",), {"help": "Node names kept in float, "
                               "comma-separated."}),
        (("--layer-report",), {**flag, "help": "Rank layers by int8 error "
                               "(CSV in --out) before exporting."}),
        (("--pixels-in-graph",), {**flag, "help": "The model takes raw "
                                  "0-255 RGB (normalization in the graph)."}),
        (("--io-dtype",), {"choices": ("int8", "uint8"),
                           "help": "int8_io / npu I/O."}),
        (("--out-features",), {"help": "Levels to export, e.g. P3,P4."}),
        (("--task",), {"choices": ("backbone", "segmentation"),
                       "help": "What to export from a checkpoint with a "
                       "segmentation head: the segmenter (default) or the "
                       "encoder's pyramid (backbone)."}),
        (("--max-images",), {"type": int, "help": "Calibrate on at most N "
                             "photos."}),
        (("--holdout-fraction",), {"type": float, "help": "Share of a "
                                   "manifest-less folder held out for "
                                   "verification."}),
        (("--seed",), {"type": int, "help": "Seeds splits and samples."}),
        (("--threads",), {"dest": "num_threads", "type": int, "help":
                          "Interpreter threads for verification and "
                          "--min-cos timing."}),
        (("--allow-flex",), {**flag, "help": "Allow select-TF (Flex) ops; "
                             "edge runtimes cannot run them."}),
    ]  # fmt: skip


def add_parsers(subparsers: Any) -> None:
    """Adds the command's subcommands to the `edge-backbones` parsers."""
    parser = subparsers.add_parser(
        "export",
        help="Export a backbone to verified .tflite artifacts.",
        description=(
            "Keras -> SavedModel -> TFLite in each mode, calibrated on "
            "photos and verified against the float model on held-out ones "
            "before anything is written."
        ),
    )
    parser.add_argument(
        "model",
        nargs="?",
        help=(
            "A preset (mit_b0, sam_vit_base, ...), a checkpoint folder, or a "
            "model of your own: a .keras/.h5 file or a SavedModel folder."
        ),
    )
    for names, kwargs in _flags():
        parser.add_argument(*names, **kwargs)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="Also show TensorFlow's and LiteRT's own log lines.",
    )
    _add_foreign_model_flags(parser)
    parser.set_defaults(func=_run)


def _add_foreign_model_flags(parser):
    # for models of your own (export/foreign_model.py)
    parser.add_argument(
        "--level-names",
        help="Your model's outputs as pyramid levels, in output order "
        "(e.g. P3,P4), when its outputs carry no usable names.",
    )
    parser.add_argument(
        "--preprocessing",
        choices=("raw", "unit", "symmetric", "imagenet"),
        help="What your model takes: raw 0-255 (default), unit 0-1, "
        "symmetric -1..1, or imagenet mean/std.",
    )


def _run(args):
    from edge_backbones import native_logs

    # TensorFlow's and LiteRT's own log lines are not export progress: they
    # show with -v, or when the export fails
    native_logs.set_log_levels(args.verbose)
    if args.verbose:
        return _run_exports(args)
    with native_logs.captured_native_stderr():
        native_logs.quiet_python_loggers()
        return _run_exports(args)


def _run_exports(args):
    from edge_backbones.errors import InputError
    from edge_backbones.exporter import recipes

    exports = recipes.load_recipes(args.recipe) if args.recipe else [{}]
    if args.model:
        exports = [{**exports[0], "model": args.model}]
    if "model" not in exports[0]:
        raise InputError(
            "Give a model (a preset name or a checkpoint folder) or "
            "--recipe FILE."
        )
    for kwargs in exports:
        _export(args, kwargs)
    return 0


def _export(args, kwargs):
    from edge_backbones.exporter import pipeline
    from edge_backbones.exporter.options import OPTIONS

    # every option with a flag of the same name (argparse's None: not given)
    flags = {key: getattr(args, key, None) for key in OPTIONS}
    flags.pop("model")
    kwargs.update({k: v for k, v in flags.items() if v is not None})
    if args.threshold:
        kwargs["thresholds"] = {
            **kwargs.get("thresholds", {}),
            **_thresholds(args.threshold),
        }
    for key in ("float_layers", "out_features"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = split_commas(kwargs[key])
    if args.level_names or args.preprocessing:
        from edge_backbones.exporter.foreign_model import ForeignModel

        kwargs["model"] = ForeignModel(
            kwargs["model"],
            level_names=args.level_names and split_commas(args.level_names),
            preprocessing=args.preprocessing or "raw",
        )
    records = pipeline.export(**kwargs)
    for record in records:
        print(record.path, file=sys.stdout)
