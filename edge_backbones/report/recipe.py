"""What `report --recipe FILE` exports before it times.

FILE is an export recipe, read by `export.recipes.load_recipes`: one
`[model]` table, or several `[[model]]` tables so that one report covers
several models. `[export]`, `[calibration]` and `[thresholds]` apply to
every model; a `config` table in a model overrides the preset's
architecture (e.g. a small ViTDet), which needs `name` and
`random_weights = true`:

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
from collections.abc import Mapping
from typing import Any

from edge_backbones.exporter.recipes import (
    artifact_stem,
    load_recipes,
    resolve_plans,
)
from edge_backbones.text import split_commas

__all__ = ["load_exports", "expected_stems"]


def _with_fp32(kwargs):
    modes = kwargs.get("modes", ["fp32"])
    modes = split_commas(modes)
    kwargs["modes"] = ["fp32", *(m for m in modes if m != "fp32")]
    # a report compares every mode; export's min_cos would keep only one
    kwargs.pop("min_cos", None)
    return kwargs


def load_exports(path: str, default_out: str) -> list[dict[str, Any]]:
    """The `export()` keyword arguments of each model the recipe names.

    Raises:
        InputError: a missing or malformed recipe (UnknownOptionError for
            an option nothing takes).
    """
    exports = []
    for kwargs in load_recipes(path):
        kwargs.setdefault("out", default_out)
        exports.append(_with_fp32(kwargs))
    return exports


def expected_stems(kwargs: Mapping[str, Any]) -> list[str]:
    """The file stems `export(**kwargs)` writes, to skip it on --resume."""
    from edge_backbones.exporter.pipeline import parse_image_size

    name = kwargs.get("name") or os.path.basename(
        os.path.normpath(os.fspath(kwargs["model"]))
    )
    from edge_backbones.models.backbone import Backbone

    size = kwargs.get("image_size")
    if size is None:  # export()'s default: the preset's natural size
        size = Backbone.natural_input_size(kwargs["model"])
    size = parse_image_size(size)
    plans = resolve_plans(kwargs.get("modes"), kwargs.get("targets"))
    return [artifact_stem(name, size, plan.mode) for plan in plans]
