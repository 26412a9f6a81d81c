"""What `report --recipe FILE` exports before it times.

FILE is either an export recipe (one `[model]` table, read by
`export.recipes.load_recipe`) or a report recipe: the same sections with
several `[[model]]` tables, so one report covers several models. A report
recipe's `[export]`, `[calibration]` and `[thresholds]` apply to every model;
keys inside a `[[model]]` table override them for that model, and a
`config` table there overrides the preset's architecture (e.g. a small
ViTDet), which needs `name` and `random_weights = true`:

    [export]
    modes = ["fp32", "int8"]
    out = "../artifacts/report"
    [calibration]
    source = "../calibration"
    [[model]]
    preset = "mit_b0"
    random_weights = true
    image_size = [224, 224]
    [[model]]
    preset = "sam_vit_base"
    name = "vit_det_small"
    random_weights = true
    config = { hidden_size = 192, num_layers = 4, num_heads = 3 }

Every model is exported in fp32 too: it is the baseline of the report.
Paths are relative to the recipe file.
"""

import os

from edge_backbones.errors import InputError, require

__all__ = ["load_exports", "expected_stems"]

_EXPORT_KEYS = {
    "modes",
    "targets",
    "out",
    "float_layers",
    "pixels_in_graph",
    "io_dtype",
    "out_features",
    "allow_flex",
    "num_threads",
    "thresholds",
}
_MODEL_KEYS = {"preset", "random_weights", "image_size", "name", "config"}
_CALIBRATION_KEYS = {"source", "max_images", "holdout_fraction", "seed"}


def _read_toml(path):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = require("tomli", "export")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise InputError(
            f"No recipe file at {path!r}. Give an export/<name>.toml."
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"Recipe {path!r} is not valid TOML: {exc}") from exc


def _check_keys(path, where, table, allowed):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(
            f"Recipe {path!r}: unknown key(s) {unknown} in {where}; known: "
            f"{sorted(allowed)}."
        )


def _with_fp32(kwargs):
    modes = kwargs.get("modes", ["fp32"])
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    kwargs["modes"] = ["fp32", *(m for m in modes if m != "fp32")]
    # a report compares every mode; export's min_cos would keep only one
    kwargs.pop("min_cos", None)
    return kwargs


def _architecture_folder(entry, name, folder):
    """A Keras preset folder for a preset with `config` overrides."""
    from edge_backbones.models.backbone import Backbone

    backbone = Backbone.from_preset(
        entry["preset"], load_weights=False, **entry["config"]
    )
    path = os.path.join(folder, "models", name)
    backbone.save_to_preset(path)
    return path


def load_exports(path, default_out):
    """The `export()` keyword arguments of each model the recipe names."""
    from edge_backbones.export.recipes import load_recipe

    data = _read_toml(path)
    if not isinstance(data.get("model"), list):
        kwargs = load_recipe(path)
        kwargs.setdefault("out", default_out)
        return [_with_fp32(kwargs)]
    base = os.path.dirname(os.path.abspath(path))

    def local(value):
        return os.path.normpath(os.path.join(base, value))

    unknown = sorted(
        set(data) - {"model", "export", "calibration", "thresholds"}
    )
    if unknown:
        raise InputError(
            f"Recipe {path!r}: unknown section(s) {unknown}; a report recipe "
            "has [[model]] tables and [export], [calibration], [thresholds]."
        )
    shared = dict(data.get("export", {}))
    _check_keys(path, "[export]", shared, _EXPORT_KEYS)
    shared["out"] = local(shared["out"]) if "out" in shared else default_out
    calibration = dict(data.get("calibration", {}))
    _check_keys(path, "[calibration]", calibration, _CALIBRATION_KEYS)
    if "source" in calibration:
        shared["calibration"] = local(calibration.pop("source"))
    shared.update(calibration)
    if data.get("thresholds"):
        shared["thresholds"] = dict(data["thresholds"])
    exports = []
    for index, entry in enumerate(data["model"]):
        where = f"[[model]] #{index + 1}"
        _check_keys(path, where, entry, _MODEL_KEYS | _EXPORT_KEYS)
        if "preset" not in entry:
            raise InputError(
                f"Recipe {path!r}: {where} has no preset (a preset name or "
                "a checkpoint folder)."
            )
        kwargs = {**shared, **entry}
        if "config" in entry:
            if "name" not in entry or not entry.get("random_weights"):
                raise InputError(
                    f"Recipe {path!r}: {where} overrides the architecture of"
                    f" {entry['preset']!r} (config = ...), so no checkpoint "
                    "fits it: give it a name and random_weights = true."
                )
            kwargs["preset"] = _architecture_folder(
                entry, entry["name"], kwargs["out"]
            )
            del kwargs["config"]
        elif os.path.isdir(local(entry["preset"])):
            kwargs["preset"] = local(entry["preset"])
        kwargs["model"] = kwargs.pop("preset")
        if "out" in entry:
            kwargs["out"] = local(entry["out"])
        exports.append(_with_fp32(kwargs))
    return exports


def expected_stems(kwargs):
    """The file stems `export(**kwargs)` writes, to skip it on --resume."""
    from edge_backbones.export.pipeline import parse_image_size
    from edge_backbones.export.recipes import resolve_plans

    name = kwargs.get("name") or os.path.basename(
        os.path.normpath(os.fspath(kwargs["model"]))
    )
    height, width = parse_image_size(kwargs.get("image_size", 512))
    plans = resolve_plans(kwargs.get("modes"), kwargs.get("targets"))
    return [f"{name}_{height}x{width}_{plan.mode}" for plan in plans]
