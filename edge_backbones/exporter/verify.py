"""The export's fidelity gate: an exported model against the Keras float
model, level by level, on held-out photos (never used for calibration).

The figures are `edge_backbones.core.fidelity.compare`'s; this module holds
the gates each artifact must pass: its mode's minimum cosine (`check`) and
its plan's graph rules (`check_graph`).

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

from typing import Any

from edge_backbones.core.modes import default_min_cosine
from edge_backbones.errors import ExportError, FidelityError
from edge_backbones.runtime.model_file import read_model_file

__all__ = ["DEFAULT_MIN_COSINE", "check", "check_graph"]

# mode or target -> its gate, from the mode registry (modes.toml)
DEFAULT_MIN_COSINE = default_min_cosine()


def check(
    fidelity: dict[str, Any], min_cosine: float, mode: str, what: str
) -> None:
    """Raises FidelityError if any level's cosine is below `min_cosine`.

    Raises:
        FidelityError: a level's cosine is below `min_cosine` (or NaN).
    """
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


def check_graph(plan, content, gpu_compatible, gpu_warnings):
    """Raises ExportError if the converted graph breaks the plan's rules."""
    parsed = read_model_file(content)
    found = dict(parsed.op_histogram.items())
    forbidden = parsed.float_handoffs if plan.forbid_float_handoffs else {}
    if forbidden:
        raise ExportError(
            f"The {plan.mode} graph holds {forbidden}: each one hands the "
            "tensor back to the CPU. Usually an op the quantizer could not "
            "make integer; find it with --layer-report, or export the cpu "
            "target instead."
        )
    if plan.forbid_float_tensors:
        floats = sum(t in ("float32", "float16") for t in parsed.tensor_types)
        if floats:
            raise ExportError(
                f"The {plan.mode} graph still has {floats} float tensor(s) "
                f"(ops: {found}); an integer-only accelerator cannot run "
                "them. Drop --float-layers for this target, or export cpu."
            )
    if plan.require_gpu_compatible and not gpu_compatible:
        raise ExportError(
            f"The {plan.mode} graph failed the TFLite Analyzer's GPU check: "
            + ("; ".join(gpu_warnings[:5]) or "no verdict in its report")
            + ". Export fp16 instead, or fix the listed ops."
        )
