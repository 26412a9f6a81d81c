"""Merges result files of several devices into one table of derived rows.

Derived here, once, for every renderer: the minimum cosine and SQNR over
pyramid levels, speed-ups against the baselines measured on the same device
at the same thread count (the fp32 .tflite, and the Keras float model on
TensorFlow), and the fastest mode of each model that meets a cosine budget.
A segmenter's rows also carry its masks' figures (`mask_agreement`: the
worst held-out image's share of pixels with the float model's class,
`miou_vs_float`, and with labels `label_miou` and `label_pixel_accuracy`),
and the report's mask agreement budget (`min_mask_agreement`).
"""

from collections.abc import Mapping, Sequence
from typing import Any

from edge_backbones.core.fidelity import min_level
from edge_backbones.errors import InputError, MetadataError
from edge_backbones.report.deployment import is_simulated
from edge_backbones.report.records import check_row, load_results

__all__ = [
    "DEFAULT_MIN_COS",
    "DEFAULT_MIN_MASK_AGREEMENT",
    "MASK_FIELDS",
    "mask_figures",
    "check_min_cos",
    "merge_results",
    "load_and_merge",
]

DEFAULT_MIN_COS = 0.999
# a segmenter's budget: at most 1 pixel in 100 changes class (the cpu and
# int8_mixed targets' aim)
DEFAULT_MIN_MASK_AGREEMENT = 0.99
# a row's mask figures: all None for a backbone
MASK_FIELDS = (
    "mask_agreement",
    "mask_agreement_mean",
    "miou_vs_float",
    "label_miou",
    "label_pixel_accuracy",
)


def mask_figures(row: Mapping[str, Any]) -> dict[str, float | None]:
    """The row's mask figures (`MASK_FIELDS`) from its `task` record."""
    figures: dict[str, float | None] = dict.fromkeys(MASK_FIELDS)
    verification = (row.get("task") or {}).get("verification")
    if not verification:
        return figures
    agreement = verification.get("mask_agreement") or {}
    labels = verification.get("labels") or {}
    figures.update(
        mask_agreement=agreement.get("min"),
        mask_agreement_mean=agreement.get("mean"),
        miou_vs_float=verification.get("miou_vs_float"),
        label_miou=labels.get("mean_iou"),
        label_pixel_accuracy=labels.get("pixel_accuracy"),
    )
    return figures


def _all_exact(fidelity):
    """True if every level matched the reference exactly (no SQNR)."""
    levels = (fidelity or {}).get("levels") or {}
    return bool(levels) and all(level.get("exact") for level in levels.values())


def _size_key(row):
    return (row["model"]["name"], tuple(row["input"]["shape"]))


def _derive(device, row, fp32, keras):
    median = row["latency_ms"]["median"]
    base_fp32 = fp32.get((*_size_key(row), row["threads"]))
    base_keras = keras.get((*_size_key(row), row["threads"]))
    if row.get("software_driver"):
        # a software GPU's time is no GPU speed: no speed-up is derived
        base_fp32 = base_keras = None
    return {
        **row,
        "device": device["name"],
        "min_cosine": min_level(row.get("fidelity"), "cosine"),
        "min_sqnr_db": min_level(row.get("fidelity"), "sqnr_db"),
        "sqnr_exact": _all_exact(row.get("fidelity")),
        **mask_figures(row),
        "speedup_vs_fp32": base_fp32 / median if base_fp32 else None,
        "speedup_vs_keras": base_keras / median if base_keras else None,
        "meets_budget": False,
        "best": False,
    }


def _mark_best(rows, min_cos):
    """Flags, per device x model x input x threads, the fastest .tflite row
    whose minimum cosine meets `min_cos`."""
    groups = {}
    for row in rows:
        if row["kind"] != "tflite" or is_simulated(row):
            # a simulator's timing is not a device's: never "fastest"
            continue
        cosine = row["min_cosine"]
        row["meets_budget"] = cosine is not None and cosine >= min_cos
        if row["meets_budget"]:
            key = (row["device"], *_size_key(row), row["threads"])
            groups.setdefault(key, []).append(row)
    for candidates in groups.values():
        min(candidates, key=lambda r: r["latency_ms"]["median"])["best"] = True


def check_min_cos(min_cos: float) -> None:
    """Raises InputError unless `min_cos` is a cosine budget in (0, 1].

    Raises:
        InputError: `min_cos` is not a number in (0, 1].
    """
    if not 0 < min_cos <= 1:  # also refuses NaN
        raise InputError(
            f"min_cos={min_cos!r} is not a cosine budget; pass a value in "
            "(0, 1], e.g. 0.999."
        )


def merge_results(
    results: Sequence[Mapping[str, Any]],
    min_cos: float = DEFAULT_MIN_COS,
    min_mask_agreement: float = DEFAULT_MIN_MASK_AGREEMENT,
) -> dict[str, Any]:
    """Result dicts (one per device) -> {"devices", "runs", "rows", ...}.

    Raises:
        InputError: a bad `min_cos`.
        MetadataError: two result files for the same device.
    """
    check_min_cos(min_cos)
    names = [r["device"]["name"] for r in results]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MetadataError(
            f"Several result files are for device(s) {duplicates}; merge one "
            "file per device (re-run one with another --device-name, or "
            "resume into one file with --resume)."
        )
    rows = []
    for result in results:
        device = result["device"]
        for index, row in enumerate(result["rows"]):
            check_row(f"the results of {device['name']}", index, row)
        fp32, keras = {}, {}
        for row in result["rows"]:
            key = (*_size_key(row), row["threads"])
            if row["kind"] == "keras":
                keras[key] = row["latency_ms"]["median"]
            elif row["mode"] == "fp32":
                fp32[key] = row["latency_ms"]["median"]
        rows += [_derive(device, row, fp32, keras) for row in result["rows"]]
    _mark_best(rows, min_cos)
    return {
        "devices": [r["device"] for r in results],
        "runs": [
            {**run, "device": r["device"]["name"]}
            for r in results
            for run in r["runs"]
        ],
        "rows": rows,
        "min_cos": min_cos,
        "min_mask_agreement": min_mask_agreement,
    }


def load_and_merge(
    paths: Sequence[str], min_cos: float = DEFAULT_MIN_COS
) -> dict[str, Any]:
    """Reads result files and merges them (see `merge_results`).

    Raises:
        MetadataError: no paths, or a file that is not a result file.
        InputError: a bad `min_cos`.
    """
    if not paths:
        raise MetadataError(
            "No result files given. Pass one <device>.json per device, as "
            "written by `edge-backbones report`."
        )
    return merge_results([load_results(p) for p in paths], min_cos)
