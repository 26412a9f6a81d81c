"""The type (and range) of every export option, checked before any work.

One table serves both faces of an export: the keyword arguments of
`export()` and the keys of a TOML recipe. A wrong type is an InputError
that names the option, the value received, its type and what is expected;
nothing is coerced (a quoted "false" is not false).
"""

import dataclasses
import numbers
import os

from edge_backbones.errors import InputError

__all__ = [
    "Kind",
    "EXPORT_OPTIONS",
    "RECIPE_KEYS",
    "check",
    "check_export",
    "check_thresholds",
]


@dataclasses.dataclass(frozen=True)
class Kind:
    """What an option accepts: a description, an example and a test."""

    expected: str
    example: str
    accepts: object  # value -> bool


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _names(value):
    return isinstance(value, str) or (
        isinstance(value, (list, tuple))
        and all(isinstance(v, str) for v in value)
    )


def _size(value):
    if isinstance(value, str) or _integer(value):
        return True
    return isinstance(value, (list, tuple)) and all(map(_integer, value))


def _cosine(value):
    # `0 < v <= 1` is False for NaN as well
    return _real(value) and 0 < value <= 1


def _thresholds(value):
    return isinstance(value, dict) and all(
        isinstance(k, str) and _cosine(v) for k, v in value.items()
    )


BOOLEAN = Kind(
    "a boolean", "true or false, without quotes", lambda v: isinstance(v, bool)
)
TEXT = Kind("a string", '"mit_b0"', lambda v: isinstance(v, str))
PATH = Kind(
    "a path (a string)",
    '"artifacts"',
    lambda v: isinstance(v, (str, os.PathLike)),
)
NAMES = Kind(
    "a list of names or one comma-separated string",
    '["fp32", "int8"] or "fp32,int8"',
    _names,
)
SIZE = Kind(
    "an image size",
    '512, "384x640" or [384, 640]',
    _size,
)
TABLE = Kind(
    "a table (dict)", "{ hidden_size = 64 }", lambda v: isinstance(v, dict)
)
COUNT = Kind("a positive integer", "16", lambda v: _integer(v) and v >= 1)
SEED = Kind("a non-negative integer", "0", lambda v: _integer(v) and v >= 0)
FRACTION = Kind("a number in [0, 1)", "0.25", lambda v: _real(v) and 0 <= v < 1)
COSINE = Kind(
    "a minimum cosine in (0, 1]",
    "0.999",
    _cosine,
)
THRESHOLDS = Kind(
    "a table of mode = minimum cosine in (0, 1]",
    "{ int8 = 0.98 }",
    _thresholds,
)

# every option of export() whose type matters (None: its default)
EXPORT_OPTIONS = {
    "image_size": SIZE,
    "modes": NAMES,
    "targets": NAMES,
    "out": PATH,
    "random_weights": BOOLEAN,
    "thresholds": THRESHOLDS,
    "min_cos": COSINE,
    "float_layers": NAMES,
    "pixels_in_graph": BOOLEAN,
    "io_dtype": TEXT,
    "out_features": NAMES,
    "max_images": COUNT,
    "holdout_fraction": FRACTION,
    "seed": SEED,
    "allow_flex": BOOLEAN,
    "num_threads": COUNT,
    "bench_runs": COUNT,
    "layer_report": BOOLEAN,
    "name": TEXT,
    "config": TABLE,
    "socs": NAMES,
}

# recipe section -> key -> kind ([thresholds]: every key a cosine)
RECIPE_KEYS = {
    "model": {
        "preset": TEXT,
        "random_weights": BOOLEAN,
        "image_size": SIZE,
        "name": TEXT,
        "config": TABLE,
    },
    "export": {
        key: EXPORT_OPTIONS[key]
        for key in (
            "modes", "targets", "float_layers", "pixels_in_graph",
            "io_dtype", "min_cos", "out_features", "allow_flex",
            "num_threads", "socs",
        )
    } | {"out": TEXT},
    "calibration": {
        "source": TEXT,
        "max_images": COUNT,
        "holdout_fraction": FRACTION,
        "seed": SEED,
    },
    "thresholds": None,
}  # fmt: skip


def check(kind, value, key, where=""):
    """InputError unless `value` is of `kind`; names `where` + `key`."""
    if kind.accepts(value):
        return
    raise InputError(
        f"{where}{key} = {value!r} ({type(value).__name__}) is not "
        f"{kind.expected}; give e.g. {key} = {kind.example}."
    )


def check_thresholds(thresholds, where=""):
    """Each threshold a minimum cosine in (0, 1], named when it is not."""
    check(TABLE, thresholds, "thresholds", where)
    for mode, value in thresholds.items():
        check(COSINE, value, f"thresholds.{mode}", where)


def check_export(arguments):
    """Checks `export()`'s keyword arguments (None keeps a default)."""
    from edge_backbones.export.foreign_model import is_foreign
    from edge_backbones.models.backbone import Backbone

    model = arguments["model"]
    if not (
        isinstance(model, (str, os.PathLike, Backbone)) or is_foreign(model)
    ):
        raise InputError(
            f"model = {model!r} ({type(model).__name__}) is not a preset "
            "name, a checkpoint folder, a Backbone or a Keras / tf-keras "
            'model; give e.g. model = "mit_b0".'
        )
    calibration = arguments["calibration"]
    if not (
        calibration is None
        or isinstance(calibration, (str, os.PathLike))
        or hasattr(calibration, "arrays")
    ):
        raise InputError(
            f"calibration = {calibration!r} ({type(calibration).__name__}) "
            "is not a folder of photos or a CalibrationSet; give e.g. "
            'calibration = "calibration/".'
        )
    for key, kind in EXPORT_OPTIONS.items():
        if arguments[key] is None:
            continue
        if kind is THRESHOLDS:
            check_thresholds(arguments[key])
        else:
            check(kind, arguments[key], key)
