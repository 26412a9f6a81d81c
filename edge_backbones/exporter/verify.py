"""Fidelity: an exported model against the Keras float model, level by level.

Both run on held-out photos (never used for calibration). Per level:
- `cosine`: the lowest, over images, of the cosine similarity between the
  flattened reference and exported feature maps (one bad image shows);
- `sqnr_db`: 10 log10(sum ref^2 / sum (ref - out)^2) over all images.
  An exact match has no error, so no finite SQNR: it is written as
  `sqnr_db: null` with `exact: true` (JSON has no Infinity, and any cap
  would be a number nobody measured, which readers would compare with
  real ones). Levels that are not exact carry no `exact` key;
- `max_abs`: the largest absolute difference.

Default minimum cosine per mode (the gate an artifact must pass, set in
the mode registry `modes.toml`; override per mode from the CLI, a recipe
or `export(thresholds=...)`), and why:
- fp32 0.9999: the same maths in another order; anything lower is a bug.
- fp16, gpu 0.999: float16 weights keep ~11 mantissa bits.
- dynamic 0.99: int8 weights, activations quantized per inference.
- int8, int8_io 0.98: static per-tensor int8 through softmax and layer
  norms loses more; the gate catches broken calibration, it is not a
  quality promise.
- int8_mixed 0.99: int8 conv/FC, the lossy ops in float.
- int16x8, cpu 0.999: CPU recipes that keep float-level fidelity.
- npu_int8 0.99: integer end to end, with room for models that integer
  arithmetic suits less than MiT-B0.
- npu 0.98: the CPU run it reads has an int16 RSQRT that errs on flat
  image regions, where the NPU does not.
The figures behind these: docs/results/.
"""

import numpy as np

from edge_backbones.errors import FidelityError
from edge_backbones.exporter.modes import default_min_cosine

__all__ = [
    "DEFAULT_MIN_COSINE",
    "compare",
    "check",
    "format_fidelity",
    "min_level",
    "worst",
]

# mode or target -> its gate, from the mode registry (modes.toml)
DEFAULT_MIN_COSINE = default_min_cosine()


def compare(reference, candidate):
    """Fidelity of `candidate` against `reference` (dicts of (N, ...))."""
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise FidelityError(
            f"The exported model lacks output level(s) {missing}; it has "
            f"{sorted(candidate)}. Export again with the same out_features."
        )
    levels = {}
    images = None
    for name, ref in reference.items():
        ref = np.asarray(ref, np.float64)
        out = np.asarray(candidate[name], np.float64)
        if ref.shape != out.shape:
            raise FidelityError(
                f"Level {name!r}: the exported model returns shape "
                f"{out.shape}, the Keras model {ref.shape}."
            )
        images = ref.shape[0]
        flat_ref = ref.reshape(images, -1)
        flat_out = out.reshape(images, -1)
        norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(
            flat_out, axis=1
        )
        dots = np.sum(flat_ref * flat_out, axis=1)
        # 1 only where both maps are zero; a zero map against a non-zero
        # one gives 0, and NaN/inf outputs stay NaN (and fail `check`)
        both_zero = ~np.any(flat_ref, axis=1) & ~np.any(flat_out, axis=1)
        with np.errstate(invalid="ignore"):
            cosines = np.where(both_zero, 1.0, dots / np.maximum(norms, 1e-30))
        levels[name] = {
            "cosine": round(float(np.min(cosines)), 6),
            **_sqnr(ref, out),
            "max_abs": round(float(np.max(np.abs(ref - out))), 6),
        }
    return {"images": int(images or 0), "levels": levels}


def _sqnr(ref, out):
    """{"sqnr_db": dB} or, on an exact match, {"sqnr_db": None, "exact":
    True}. NaN or -inf (non-finite outputs, an all-zero reference) stay as
    they are: such a level fails `check`, so it is never written."""
    error = np.sum((ref - out) ** 2)
    if error == 0:
        return {"sqnr_db": None, "exact": True}
    with np.errstate(divide="ignore", invalid="ignore"):
        sqnr = 10 * np.log10(np.sum(ref**2) / error)
    return {"sqnr_db": round(float(sqnr), 2)}


def worst(fidelity, metric="cosine"):
    """(level name, its figures) with the lowest `metric`, NaN lowest.

    Levels without the metric (an exact match's `sqnr_db` is None) are
    passed over; (None, None) if no level has it or there is no fidelity.
    The one "worst level" rule for export, runtime and report.
    """

    def key(item):
        value = item[1][metric]
        return value if value == value else float("-inf")

    levels = [
        item
        for item in ((fidelity or {}).get("levels") or {}).items()
        if item[1].get(metric) is not None
    ]
    return min(levels, key=key) if levels else (None, None)


def min_level(fidelity, metric):
    """The lowest `metric` over levels (NaN lowest); None if no level has
    it (every level exact, for `sqnr_db`) or there is no fidelity."""
    _, figures = worst(fidelity, metric)
    return None if figures is None else figures[metric]


def format_fidelity(fidelity):
    """`cos 0.9991 (P1) sqnr 27.1 dB`: the worst level's figures."""
    name, figures = worst(fidelity)
    sqnr = min_level(fidelity, "sqnr_db")
    sqnr = "exact" if sqnr is None else f"{sqnr:.1f} dB"
    return f"cos {figures['cosine']:.4f} ({name}) sqnr {sqnr}"


def check(fidelity, min_cosine, mode, what):
    """Raises FidelityError if any level's cosine is below `min_cosine`."""
    failing = {
        name: figures
        for name, figures in fidelity["levels"].items()
        # `not >=`: a NaN cosine (non-finite outputs) fails too
        if not figures["cosine"] >= min_cosine
    }
    if failing:
        table = "; ".join(
            f"{name}: cosine {f['cosine']:.6f}, SQNR "
            f"{'exact' if f.get('exact') else str(f['sqnr_db']) + ' dB'}, "
            f"max abs {f['max_abs']}"
            for name, f in failing.items()
        )
        error = FidelityError(
            f"{what} ({mode}) is below its fidelity threshold: {table} "
            f"(minimum cosine {min_cosine}, {fidelity['images']} held-out "
            "images); no artifact was written. Fix: keep the lossy layers "
            "in float (--float-layers, see --layer-report), use another "
            f"mode/target, or lower the threshold (--threshold {mode}=X)."
        )
        error.fidelity = fidelity
        raise error
