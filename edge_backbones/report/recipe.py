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

`[[device]]` tables name the devices a cluster run (`report --cluster`,
see report/cluster.py) times every artifact on; a serial run times on
this machine and skips them:

    [[device]]
    name = "pi5"          # the node started with resource device:pi5
    threads = [1, 4]
    keras = false         # no TensorFlow there: no Keras baseline rows
"""

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from edge_backbones.errors import InputError
from edge_backbones.exporter.recipes import (
    artifact_stem,
    load_recipes,
    read_toml,
    resolve_plans,
)
from edge_backbones.text import split_commas

__all__ = ["Device", "expected_stems", "load_devices", "load_exports"]

_DEVICE_SECTION = "device"


@dataclasses.dataclass(frozen=True)
class Device:
    """A device of a cluster run: rows go to the node offering the Ray
    resource `device:<name>`."""

    name: str
    threads: tuple = (1,)
    keras: bool = True  # a Keras float baseline row (needs TensorFlow)


def load_devices(path):
    """The recipe's [[device]] tables as Devices ([] when it has none)."""
    tables = read_toml(path).get(_DEVICE_SECTION, [])
    where = f"Recipe {os.fspath(path)!r}: [[device]]"
    if not isinstance(tables, list):
        raise InputError(
            f"{where} must be an array of tables ([[device]], not "
            "[device]), one per device."
        )
    devices = []
    for table in tables:
        unknown = sorted(set(table) - {"name", "threads", "keras"})
        name = table.get("name")
        threads = table.get("threads", [1])
        threads = [threads] if isinstance(threads, int) else threads
        problem = None
        if unknown:
            problem = f"unknown key(s) {unknown}; known: keras, name, threads"
        elif not isinstance(name, str) or not name:
            problem = f"name = {name!r} is not a name"
        elif not isinstance(threads, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0
            for n in threads
        ):
            problem = f"threads = {threads!r} is not a list of counts"
        elif not isinstance(table.get("keras", True), bool):
            problem = f"keras = {table['keras']!r} is not true or false"
        elif name in [d.name for d in devices]:
            problem = f"{name!r} is listed twice"
        if problem:
            raise InputError(
                f'{where}: {problem}; e.g. name = "pi5", threads = [1, 4]'
                ", keras = false."
            )
        devices.append(Device(name, tuple(threads), table.get("keras", True)))
    return devices


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
    for kwargs in load_recipes(path, other_sections=(_DEVICE_SECTION,)):
        kwargs.setdefault("out", default_out)
        exports.append(_with_fp32(kwargs))
    return exports


def expected_stems(kwargs: Mapping[str, Any]) -> list[str]:
    """The file stems `export(**kwargs)` writes, to skip it on --resume."""
    from edge_backbones.exporter.options import parse_image_size

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
