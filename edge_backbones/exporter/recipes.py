"""TOML export jobs: files that pin a whole export (model, size, modes,
calibration, gates). What each mode converts to is the mode registry's
(`modes.toml`, read by `export.modes`).

A TOML job (see export/*.toml):

    [model]
    preset = "mit_b0"         # or a checkpoint folder, relative to the file
    random_weights = true
    image_size = [256, 256]
    config = {}               # architecture overrides (optional)
    [export]
    modes = ["int8"]
    targets = ["cpu"]
    out = "../artifacts"
    float_layers = []         # node names kept in float (quant_debug)
    # or: per-layer precision of one int8 mode (exporter.budget)
    # budget = { min_cos = 0.999, max_ms = 40 }
    [calibration]
    source = "../calibration"
    max_images = 16
    [thresholds]              # minimum cosine per mode
    cpu = 0.999

`[[model]]` tables instead of one `[model]` export several models with the
same settings. The tables are `options.ExportJob`'s groups, and their keys
are checked against the same table (`options.OPTIONS`) as `export()`'s
keyword arguments.
"""

import os
from collections.abc import Sequence
from typing import Any

from edge_backbones.core.modes import resolve_plans
from edge_backbones.core.suggest import did_you_mean
from edge_backbones.errors import InputError, UnknownOptionError, require
from edge_backbones.exporter import options
from edge_backbones.exporter.options import RECIPE_KEYS, check, check_thresholds

__all__ = [
    "artifact_stem",
    "resolve_plans",
    "load_jobs",
    "load_recipe",
    "load_recipes",
    "read_toml",
]


def artifact_stem(
    name: str, size: Sequence[int], mode: str | None = None
) -> str:
    """`mit_b0_512x512_int8`: the one file-name rule for the export's
    artifacts (`.tflite`, `.json`) and the report that finds them; without
    `mode`, the stem of the per-size files (`_layers.csv`)."""
    stem = f"{name}_{size[0]}x{size[1]}"
    return f"{stem}_{mode}" if mode else stem


def _tomllib():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = require("tomli", "export")
    return tomllib


def _check_table(path, section, table, kinds):
    """Unknown keys are UnknownOptionErrors, values of the wrong type
    InputErrors."""
    where = f"Recipe {os.fspath(path)!r}: [{section}] "
    if kinds is None:  # [thresholds]: any mode, each a cosine
        check_thresholds(table, where)
        return
    unknown = sorted(set(table) - set(kinds))
    if unknown:
        raise UnknownOptionError(
            f"Recipe {path!r}: unknown key(s) {unknown} in [{section}]"
            f"{did_you_mean(unknown[0], kinds)}; known: {sorted(kinds)}."
        )
    for key, value in table.items():
        check(kinds[key], value, key, where)


def load_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML recipe with one [model] -> keyword arguments of `export()`.

    Raises:
        InputError: a missing or malformed recipe, or one with several
            models (UnknownOptionError for an unknown key).
    """
    exports = load_recipes(path)
    if len(exports) != 1:
        raise InputError(
            f"Recipe {path!r} lists {len(exports)} models; use "
            "load_recipes() for one export() call per model."
        )
    return exports[0]


def load_jobs(path: str | os.PathLike[str]) -> list[options.ExportJob]:
    """A TOML recipe -> one `options.ExportJob` per model.

    Raises:
        InputError: a missing or malformed recipe (UnknownOptionError for
            an unknown key).
    """
    return [options.job(kwargs) for kwargs in load_recipes(path)]


def load_recipes(
    path: str | os.PathLike[str], other_sections: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """A TOML recipe -> one dict of `export()` keyword arguments per model.

    `[model]` is one model; `[[model]]` tables list several that share the
    other sections. Paths in it (a checkpoint folder, `out`, the calibration
    source) are relative to the recipe file, so a recipe works from any
    directory. `other_sections` are read by the caller (the report's
    `[[device]]`) and skipped here.

    Raises:
        InputError: a missing or malformed recipe (UnknownOptionError for
            an unknown key).
    """
    data = {
        key: value
        for key, value in read_toml(path).items()
        if key not in other_sections
    }
    _check_sections(path, data)
    base = os.path.dirname(os.path.abspath(path))

    def local(value):
        return os.path.normpath(os.path.join(base, value))

    shared = _shared(data, local)
    models = data.get("model", {})
    models = models if isinstance(models, list) else [models]
    return [{**_model(path, model, local), **shared} for model in models]


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The TOML file's tables; InputError if it is missing or malformed."""
    tomllib = _tomllib()
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"No recipe file at {path!r}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"Recipe {path!r} is not valid TOML: {exc}") from exc


def _check_sections(path, data):
    """Every section one of RECIPE_KEYS, a table, with known keys."""
    for section, value in data.items():
        if section not in RECIPE_KEYS:
            raise UnknownOptionError(
                f"Recipe {path!r}: unknown section [{section}]"
                f"{did_you_mean(section, RECIPE_KEYS)}; sections "
                f"are {sorted(RECIPE_KEYS)}."
            )
        tables = value if isinstance(value, list) else [value]
        if (
            not tables
            or (isinstance(value, list) and section != "model")
            or not all(isinstance(table, dict) for table in tables)
        ):
            raise InputError(
                f"Recipe {path!r}: [{section}] must be a table"
                + (" (or [[model]] tables)" if section == "model" else "")
                + f"; got {value!r}. See export/README.md for the layout."
            )
        for table in tables:
            _check_table(path, section, table, RECIPE_KEYS[section])


def _shared(data, local):
    """The `export()` keywords of [export], [calibration], [thresholds]."""
    shared = dict(data.get("export", {}))
    if "out" in shared:
        shared["out"] = local(shared["out"])
    calibration = data.get("calibration", {})
    if "source" in calibration:
        shared["calibration"] = local(calibration["source"])
    for key in ("max_images", "holdout_fraction", "seed"):
        if key in calibration:
            shared[key] = calibration[key]
    if data.get("thresholds"):
        shared["thresholds"] = dict(data["thresholds"])
    return shared


def _model(path, model, local):
    """The `export()` keywords of one [model] table."""
    if "preset" not in model:
        raise InputError(
            f"Recipe {path!r}: a [model] has no preset (a preset name "
            "or a checkpoint folder)."
        )
    preset = model["preset"]
    if os.path.isdir(local(preset)):  # a folder beside the recipe
        preset = local(preset)
    if "config" in model and not (
        model.get("name") and model.get("random_weights")
    ):
        raise InputError(
            f"Recipe {path!r}: the [model] {preset!r} overrides its "
            "architecture (config = ...), so no checkpoint fits it: give"
            " it a name and random_weights = true."
        )
    kwargs = {"model": preset}
    for key in ("random_weights", "image_size", "name", "config"):
        if key in model:
            kwargs[key] = model[key]
    return kwargs
