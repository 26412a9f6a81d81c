"""Fidelity metrics: how close one model's outputs are to a reference's.

The one implementation the export gate, the NPU checks, the runtime's
parity records, the report and the benchmarks share. Per output level of
`compare`:
- `cosine`: the lowest, over images, of the cosine similarity between the
  flattened reference and candidate maps (one bad image shows);
- `sqnr_db`: 10 log10(sum ref^2 / sum (ref - out)^2) over all images.
  An exact match has no error, so no finite SQNR: it is written as
  `sqnr_db: null` with `exact: true` (JSON has no Infinity, and any cap
  would be a number nobody measured, which readers would compare with
  real ones). Levels that are not exact carry no `exact` key;
- `max_abs`: the largest absolute difference.

Edge cases, decided once: two all-zero maps are equal (cosine 1); a zero
map against a non-zero one has cosine 0; NaN or inf outputs give a NaN
cosine, which fails every `>=` gate; rounding never lifts a cosine above
1. Only numpy is needed.
"""

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from edge_backbones.errors import FidelityError

__all__ = [
    "compare",
    "cosine",
    "cosines",
    "format_fidelity",
    "min_cosine",
    "min_level",
    "worst",
]

# `compare`'s result: {"images": N, "levels": {name: {"cosine", ...}}}
Fidelity: TypeAlias = dict[str, Any]

# digits `compare` keeps: below them the figures are float64 noise
_COSINE_DIGITS = 6
_SQNR_DIGITS = 2


def cosines(
    reference: npt.ArrayLike, candidate: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Per-image cosine similarities of two (N, ...) arrays, as (N,) float64.

    Each image's map is flattened; both-zero -> 1, one zero -> 0, NaN stays.

    Raises:
        FidelityError: the two shapes differ.
    """
    ref = np.asarray(reference, np.float64)
    out = np.asarray(candidate, np.float64)
    if ref.shape != out.shape:
        raise FidelityError(
            f"Cannot compare shapes {out.shape} and {ref.shape}: the "
            "candidate must have the reference's shape."
        )
    images = ref.shape[0] if ref.ndim else 1
    flat_ref = ref.reshape(images, -1)
    flat_out = out.reshape(images, -1)
    norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_out, axis=1)
    dots = np.sum(flat_ref * flat_out, axis=1)
    both_zero = ~np.any(flat_ref, axis=1) & ~np.any(flat_out, axis=1)
    with np.errstate(invalid="ignore"):
        values = np.where(both_zero, 1.0, dots / np.maximum(norms, 1e-300))
    # float64 rounding can put a cosine a hair above 1
    return np.clip(values, -1.0, 1.0)


def min_cosine(reference: npt.ArrayLike, candidate: npt.ArrayLike) -> float:
    """The lowest per-image cosine of two (N, ...) arrays (NaN if any is).

    Raises:
        FidelityError: the two shapes differ.
    """
    return float(np.min(cosines(reference, candidate)))


def cosine(reference: npt.ArrayLike, candidate: npt.ArrayLike) -> float:
    """The cosine similarity of two arrays, each flattened whole.

    Raises:
        FidelityError: the two sizes differ.
    """
    ref = np.ravel(np.asarray(reference))
    out = np.ravel(np.asarray(candidate))
    return min_cosine(ref[None], out[None])


def _sqnr(
    ref: npt.NDArray[np.float64], out: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """{"sqnr_db": dB} or, on an exact match, {"sqnr_db": None, "exact":
    True}. NaN or -inf (non-finite outputs, an all-zero reference) stay as
    they are: such a level fails every gate, so it is never written."""
    error = np.sum((ref - out) ** 2)
    if error == 0:
        return {"sqnr_db": None, "exact": True}
    with np.errstate(divide="ignore", invalid="ignore"):
        sqnr = 10 * np.log10(np.sum(ref**2) / error)
    return {"sqnr_db": round(float(sqnr), _SQNR_DIGITS)}


def compare(
    reference: Mapping[str, npt.ArrayLike],
    candidate: Mapping[str, npt.ArrayLike],
) -> Fidelity:
    """Fidelity of `candidate` against `reference` (dicts of level name ->
    (N, ...) arrays): {"images": N, "levels": {name: {cosine, sqnr_db,
    [exact], max_abs}}}.

    Raises:
        FidelityError: a level is missing or has another shape.
    """
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise FidelityError(
            f"The exported model lacks output level(s) {missing}; it has "
            f"{sorted(candidate)}. Export again with the same out_features."
        )
    levels = {}
    images = None
    for name, given in reference.items():
        ref = np.asarray(given, np.float64)
        out = np.asarray(candidate[name], np.float64)
        if ref.shape != out.shape:
            raise FidelityError(
                f"Level {name!r}: the exported model returns shape "
                f"{out.shape}, the Keras model {ref.shape}."
            )
        images = ref.shape[0]
        levels[name] = {
            "cosine": round(min_cosine(ref, out), _COSINE_DIGITS),
            **_sqnr(ref, out),
            "max_abs": round(float(np.max(np.abs(ref - out))), 6),
        }
    return {"images": int(images or 0), "levels": levels}


def worst(
    fidelity: Mapping[str, Any] | None, metric: str = "cosine"
) -> tuple[str, dict[str, Any]] | tuple[None, None]:
    """(level name, its figures) with the lowest `metric`, NaN lowest.

    Levels without the metric (an exact match's `sqnr_db` is None) are
    passed over; (None, None) if no level has it or there is no fidelity.
    The one "worst level" rule for export, runtime and report.
    """

    def key(item: tuple[str, dict[str, Any]]) -> float:
        value: float = item[1][metric]
        return value if value == value else float("-inf")

    levels = [
        item
        for item in ((fidelity or {}).get("levels") or {}).items()
        if item[1].get(metric) is not None
    ]
    return min(levels, key=key) if levels else (None, None)


def min_level(fidelity: Mapping[str, Any] | None, metric: str) -> float | None:
    """The lowest `metric` over levels (NaN lowest); None if no level has
    it (every level exact, for `sqnr_db`) or there is no fidelity."""
    _, figures = worst(fidelity, metric)
    if figures is None:
        return None
    value: float = figures[metric]
    return value


def format_fidelity(fidelity: Mapping[str, Any] | None) -> str:
    """`cos 0.9991 (P1) sqnr 27.1 dB`: the worst level's figures."""
    name, figures = worst(fidelity)
    sqnr = min_level(fidelity, "sqnr_db")
    text = "exact" if sqnr is None else f"{sqnr:.1f} dB"
    # a fidelity without levels fails here, as it always has
    return f"cos {figures['cosine']:.4f} ({name}) sqnr {text}"  # type: ignore[index]
