"""Per-layer precision chosen against a budget the user sets.

`export(..., budget="min_cos=0.999,max_ms=40,max_mb=5")` (CLI `--budget`,
recipe `[export] budget`) searches, for one int8 mode, which layers to keep
in float:

1. Start from the fastest graph of that mode: its float ops and float
   layer types (layer norms) as the registry says, but none of its
   hand-picked float layer names (`int8_mixed`'s patch embedding and
   attention projections).
2. Per layer with weights (a Keras layer path, `quant_debug`): its error
   contribution is what raising that one layer to float buys in worst
   cosine on the search photos (the calibration photos, against the fp32
   graph); its time saving is what its ops cost in float minus in int8,
   from the LiteRT interpreter's isolated op timings on this machine
   (`runtime.op_profile.op_times`).
3. Raise layers one at a time, the worst error per millisecond saved
   first; after each step the graph's worst cosine, latency (the runtime
   benchmark) and size go into the search log. A graph that meets the
   budget on the search photos is re-verified on the held-out photos;
   the first that meets it there is the answer, the fastest the greedy
   order reaches.

Per-layer choices are int8 or float32. int16 activations cannot be mixed
with int8 ones in one graph (the MLIR quantizer quantizes a graph to one
activation type), and float16 weights for the float layers would only
halve their size at XNNPACK's same fp32 speed: both are left out.

The chosen map goes into the artifact's `scheme.per_layer`; the log is
written beside the artifact as strict JSON (`<stem>.budget.json`).
"""

import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.core.cpuinfo import cpu_record
from edge_backbones.core.suggest import did_you_mean
from edge_backbones.errors import BudgetError, InputError

__all__ = [
    "BUDGET_KEYS",
    "Budget",
    "LayerUnit",
    "SearchResult",
    "parse_budget",
    "check_budget_plans",
    "search",
    "worst_cosine",
    "overlays",
]

BUDGET_KEYS = ("min_cos", "max_ms", "max_mb")
# what a budget searches when no mode is given: int8 conv/FC, float
# attention (the fastest int8 scheme on XNNPACK)
DEFAULT_MODE = "int8_mixed"
# calibration photos each candidate is scored on during the search
SEARCH_PHOTOS = 8
# a layer whose ops cost no more in float than in int8 is raised first
_FREE_MS = 1e-3


@dataclasses.dataclass(frozen=True)
class Budget:
    """What the chosen graph must meet: worst cosine against the float
    model, latency on this machine, file size."""

    min_cos: float | None = None
    max_ms: float | None = None
    max_mb: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return dataclasses.asdict(self)

    def met(self, cosine: float, ms: float, mb: float, gate: float) -> bool:
        """True if a graph of these figures meets the budget (`gate`: the
        cosine to reach where the budget names none)."""
        return (
            cosine >= (self.min_cos if self.min_cos is not None else gate)
            and (self.max_ms is None or ms <= self.max_ms)
            and (self.max_mb is None or mb <= self.max_mb)
        )


def _number(key: str, text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(text, bool) or not math.isfinite(value) or value <= 0:
        raise InputError(
            f"budget {key}={text!r} is not a positive number; give e.g. "
            "budget='min_cos=0.999,max_ms=40,max_mb=5'."
        )
    if key == "min_cos" and value > 1:
        raise InputError(
            f"budget min_cos={text!r} is above 1, which no cosine reaches; "
            "give a value in (0, 1], e.g. min_cos=0.999."
        )
    return value


def parse_budget(value: "str | Mapping[str, Any] | Budget") -> Budget:
    """A Budget from "min_cos=0.999,max_ms=40" or {"min_cos": 0.999}.

    Raises:
        InputError: an unknown key, a value that is not a positive number
            (min_cos above 1), a key given twice with different values
            (contradictory), or an empty budget.
    """
    if isinstance(value, Budget):
        return value
    pairs: list[tuple[str, Any]]
    if isinstance(value, str):
        pairs = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            key, sep, text = part.partition("=")
            if not sep:
                raise InputError(
                    f"budget part {part!r} is not KEY=VALUE; give e.g. "
                    "budget='min_cos=0.999,max_ms=40'."
                )
            pairs.append((key.strip(), text.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise InputError(
            f"budget = {value!r} ({type(value).__name__}) is neither "
            "'min_cos=0.999,max_ms=40' nor a table of those keys."
        )
    found: dict[str, float] = {}
    for key, text in pairs:
        if key not in BUDGET_KEYS:
            raise InputError(
                f"unknown budget key {key!r}"
                f"{did_you_mean(key, BUDGET_KEYS)}; a budget takes "
                f"{', '.join(BUDGET_KEYS)}."
            )
        number = _number(key, text)
        if key in found and found[key] != number:
            raise InputError(
                f"the budget is contradictory: {key} is both {found[key]:g} "
                f"and {number:g}. Give each of {', '.join(BUDGET_KEYS)} once."
            )
        found[key] = number
    if not found:
        raise InputError(
            "the budget is empty; give at least one of "
            f"{', '.join(BUDGET_KEYS)}, e.g. budget='min_cos=0.999'."
        )
    return Budget(**found)


def check_budget_plans(
    budget: Budget,
    plans: Sequence[Any],
    min_cos: float | None,
    thresholds: Mapping[str, float] | None,
) -> None:
    """InputError unless the budget has exactly one mode with per-layer
    choices (an int8 scheme) and agrees with the export's other gates.

    Raises:
        InputError: several modes, a mode without per-layer choices
            (fp32, fp16, dynamic, int16x8), a budget combined with
            `min_cos` (which picks among whole modes), or a threshold for
            the mode that disagrees with the budget's min_cos.
    """
    names = [p.mode for p in plans]
    if len(plans) != 1:
        raise InputError(
            f"a budget chooses per-layer precision for one mode; got "
            f"{names}. Export one int8 mode with it (e.g. modes="
            "'int8_mixed'), the others in a second export."
        )
    (plan,) = plans
    if plan.converter != "int8":
        raise InputError(
            f"mode {plan.mode!r} ({plan.description}) has no per-layer "
            "precision choice: every layer runs at its one precision. Give "
            "the budget with an int8 mode (int8_mixed, int8, int8_io), or "
            "drop the budget."
        )
    if min_cos is not None:
        raise InputError(
            "budget and min_cos are contradictory: min_cos picks the fastest"
            " whole mode, a budget chooses precision layer by layer. Put "
            f"the cosine in the budget (budget='min_cos={min_cos}')."
        )
    given = (thresholds or {}).get(plan.mode)
    if (
        given is not None
        and budget.min_cos is not None
        and given != budget.min_cos
    ):
        raise InputError(
            f"the budget is contradictory: min_cos={budget.min_cos:g} but "
            f"thresholds[{plan.mode!r}] = {given:g}. Give the cosine once, "
            "in the budget."
        )


@dataclasses.dataclass(frozen=True)
class LayerUnit:
    """One layer the search may raise: its Keras path, the graph's output
    tensor names of its ops, and what raising it costs and buys."""

    path: str
    nodes: tuple[str, ...]
    cosine_gain: float = 0.0  # worst cosine with it float minus without
    ms_saved: float = 0.0  # its ops' float time minus their int8 time

    @property
    def priority(self) -> float:
        """Error bought back per millisecond its int8 form saves."""
        return self.cosine_gain / max(self.ms_saved, _FREE_MS)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The chosen graph and how it was found."""

    content: bytes
    float_layers: tuple[str, ...]  # Keras paths kept in float
    float_nodes: tuple[str, ...]  # their graph nodes
    choices: dict[str, str]  # layer path -> "int8" | "float32"
    log: dict[str, Any]  # the search log (strict JSON)


# (.tflite bytes) -> worst cosine of the graph against the float model
Score = Callable[[bytes], float]
# (float nodes) -> .tflite bytes
Quantize = Callable[[Sequence[str]], bytes]


def _latency_ms(content: bytes, threads: int | None, runs: int) -> float:
    from edge_backbones.runtime.bench import benchmark

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "candidate.tflite")
        with open(path, "wb") as f:
            f.write(content)
        result = benchmark(path, num_threads=threads, runs=runs, warmup=2)
    return result["latency_ms"]["median"]


def _op_ms(content: bytes, threads: int | None, runs: int) -> dict[str, float]:
    """{output tensor name: ms} of every op, timed in isolation."""
    from edge_backbones.runtime.op_profile import op_times

    _, ops = op_times(content, threads, runs=runs, warmup=2)
    return {op["output"]: op["ms"] for op in ops}


def worst_cosine(
    reference: Mapping[str, Any], outputs: Mapping[str, Any]
) -> float:
    """The lowest per-level worst-image cosine of `outputs`."""
    _, figures = fidelity_lib.worst(fidelity_lib.compare(reference, outputs))
    return float(figures["cosine"]) if figures else float("nan")


def search(
    units: Sequence[LayerUnit],
    quantize: Quantize,
    fp32: bytes,
    search_score: Score,
    holdout_score: Score,
    budget: Budget,
    gate: float,
    num_threads: int | None,
    bench_runs: int,
    log: Callable[[str], object],
) -> SearchResult:
    """The fastest graph the greedy order reaches that meets `budget`.

    `units`: the layers that may be raised (their nodes in the graph);
    `quantize(float_nodes)`: the mode's graph with those nodes float on
    top of its own; `search_score` / `holdout_score`: a graph's worst
    cosine on the search / held-out photos; `gate`: the cosine to reach
    where the budget names none (the mode's gate).

    Raises:
        BudgetError: no graph meets it; the message names the closest.
    """
    started = time.perf_counter()
    base = quantize(())
    steps = [_step(base, [], search_score(base), num_threads, bench_runs)]
    _log_step(log, steps[0], [])
    measured: list[LayerUnit] = []
    op_ms: dict[str, dict[str, float]] = {"float32": {}, "int8": {}}
    # measure the layers only where full int8 fails and something can pass
    if _within_limits(budget, steps[0]) and not _meets(
        budget, steps[0], gate, base, holdout_score, log
    ):
        log(f"budget: measuring {len(units)} layers, each alone in float")
        op_ms = {
            "float32": _op_ms(fp32, num_threads, bench_runs),
            "int8": _op_ms(base, num_threads, bench_runs),
        }
        measured = _measure(
            units, quantize, op_ms, steps[0]["cosine"], search_score
        )
    order = sorted(measured, key=lambda u: u.priority, reverse=True)
    raised_units: list[LayerUnit] = []
    content = base
    chosen: int | None = None  # the index of the step that meets it
    for index in range(len(order) + 1):
        if index:
            raised_units.append(order[index - 1])
            content = quantize([n for u in raised_units for n in u.nodes])
            steps.append(
                _step(
                    content,
                    raised_units,
                    search_score(content),
                    num_threads,
                    bench_runs,
                )
            )
            _log_step(log, steps[-1], raised_units)
        step = steps[-1]
        if not _within_limits(budget, step):
            break  # raising more only makes it slower and larger
        if _meets(budget, step, gate, content, holdout_score, log):
            chosen = index
            break
    record = {
        "budget": budget.as_dict(),
        "gate": budget.min_cos if budget.min_cos is not None else gate,
        "threads": num_threads,
        # the machine the latencies are from: flags, clock, load
        "cpu": cpu_record(),
        "method": (
            "greedy: layers raised to float in order of worst-cosine gain "
            "per ms their int8 ops save (isolated LiteRT op timings)"
        ),
        "layers": [
            {
                "path": u.path,
                "nodes": list(u.nodes),
                "cosine_gain": u.cosine_gain,
                "ms_saved": u.ms_saved,
            }
            for u in order
        ],
        "steps": steps,
        "chosen_step": chosen,
        # {graph: {op output tensor: isolated ms}}: the time overlay's
        "op_ms": op_ms,
        "seconds": time.perf_counter() - started,
    }
    if chosen is None:
        closest = max(steps, key=lambda s: s["cosine"])
        error = BudgetError(
            f"No per-layer precision meets the budget {_describe(budget)}: "
            f"the closest graph (step {steps.index(closest)}, "
            f"{len(closest['float_layers'])} float layer(s)) reaches "
            f"cosine {closest['cosine']:.5f}"
            + (
                f" (held-out {closest['holdout_cosine']:.5f})"
                if "holdout_cosine" in closest
                else ""
            )
            + f", {closest['ms']:.2f} ms, {closest['mb']:.3f} MB. Nothing "
            "was written. Loosen the budget (a lower min_cos, a higher "
            "max_ms or max_mb), or export fp32."
        )
        error.closest = closest
        raise error
    choices = {u.path: "int8" for u in units}
    choices.update({u.path: "float32" for u in raised_units})
    return SearchResult(
        content=content,
        float_layers=tuple(u.path for u in raised_units),
        float_nodes=tuple(n for u in raised_units for n in u.nodes),
        choices=choices,
        log=record,
    )


def _measure(
    units: Sequence[LayerUnit],
    quantize: Quantize,
    op_ms: Mapping[str, Mapping[str, float]],
    base_cos: float,
    search_score: Score,
) -> list[LayerUnit]:
    """Each unit with its cosine gain (raised alone) and ms saved (its
    ops' isolated float time minus their int8 time, from `op_ms`:
    {"float32" | "int8": {output tensor name: ms}})."""
    float_ms, int8_ms = op_ms["float32"], op_ms["int8"]
    measured = []
    for unit in units:
        gain = search_score(quantize(unit.nodes)) - base_cos
        saved = sum(
            float_ms.get(n, 0.0) - int8_ms.get(n, 0.0) for n in unit.nodes
        )
        measured.append(
            dataclasses.replace(unit, cosine_gain=gain, ms_saved=saved)
        )
    return measured


def _meets(
    budget: Budget,
    step: dict[str, Any],
    gate: float,
    content: bytes,
    holdout_score: Score,
    log: Callable[[str], object],
) -> bool:
    """True if the step's graph meets the budget on the search photos
    and then on the held-out ones (recorded in `step`, scored once)."""
    if not budget.met(step["cosine"], step["ms"], step["mb"], gate):
        return False
    if "holdout_cosine" not in step:
        step["holdout_cosine"] = holdout_score(content)
        step["holdout_met"] = budget.met(step["holdout_cosine"], 0, 0, gate)
        log(
            "budget: it meets the budget on the search photos; held-out "
            f"cosine {step['holdout_cosine']:.5f}"
        )
    return bool(step["holdout_met"])


def _within_limits(budget: Budget, step: Mapping[str, Any]) -> bool:
    return (budget.max_ms is None or step["ms"] <= budget.max_ms) and (
        budget.max_mb is None or step["mb"] <= budget.max_mb
    )


def _log_step(
    log: Callable[[str], object],
    step: Mapping[str, Any],
    raised: Sequence[LayerUnit],
) -> None:
    log(
        f"budget: {len(raised)} float layer(s)"
        + (f" (+{raised[-1].path})" if raised else "")
        + f": cosine {step['cosine']:.5f}, {step['ms']:.2f} ms, "
        f"{step['mb']:.3f} MB"
    )


def _step(
    content: bytes,
    raised: Sequence[LayerUnit],
    cosine: float,
    threads: int | None,
    runs: int,
) -> dict[str, Any]:
    return {
        "float_layers": [u.path for u in raised],
        "cosine": cosine,
        "ms": _latency_ms(content, threads, runs),
        "mb": len(content) / 1e6,
    }


def _describe(budget: Budget) -> str:
    return ",".join(
        f"{k}={v:g}" for k, v in budget.as_dict().items() if v is not None
    )


def overlays(log: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, float]]]:
    """{file suffix: (overlay name, {op output tensor: value})} of a
    search log, for Model Explorer (`quant_debug.write_node_values`): each
    layer op's error (the worst cosine keeping its layer float buys back)
    and each op's isolated time in the full-int8 and the float graph."""
    error = {
        node: float(layer["cosine_gain"])
        for layer in log["layers"]
        for node in layer["nodes"]
    }
    return {
        "budget_error": ("cosine gain of the layer in float", error),
        "budget_int8_ms": ("op ms, full int8", dict(log["op_ms"]["int8"])),
        "budget_float_ms": ("op ms, float", dict(log["op_ms"]["float32"])),
    }
