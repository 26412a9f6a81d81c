"""Same artifact, two machines: do they compute the same outputs?

An artifact verified on one machine (say the x86 laptop that exported it)
is run on another (a Raspberry Pi, or an emulated one) on the same inputs,
and the two sets of outputs are compared level by level. TFLite lets int8
kernels round differently on ARM and x86, so integer modes may differ by a
few quantization steps; float modes must agree to rounding.

A run is saved as `<name>.npz` (outputs, one array per artifact x delegate
x level) beside `<name>.json` (what ran where: architecture, CPU, backend,
emulation, and each artifact's mode and output scales). numpy only.
"""

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from edge_backbones.atomic_io import (
    stage_file,
    write_json_atomic,
)
from edge_backbones.core import modes
from edge_backbones.core.cpuinfo import read_cpuinfo
from edge_backbones.core.fidelity import min_cosine
from edge_backbones.core.image_sets import load_calibration_set
from edge_backbones.errors import InputError, ModelFileError
from edge_backbones.runtime.backends import load_backend
from edge_backbones.runtime.edge_model import EdgeModel
from edge_backbones.runtime.metadata import read_metadata
from edge_backbones.runtime.model_file import read_model_file
from edge_backbones.runtime.preprocess import load_image

__all__ = [
    "DELEGATES",
    "EXACT_DELEGATES",
    "FLOAT_MODES",
    "INTEGER_ONLY_MODES",
    "MAX_FLOAT_RELATIVE",
    "MAX_INT8_ERROR_RATIO",
    "MIN_INT_COSINE",
    "compare",
    "holdout_inputs",
    "load_arrays",
    "load_run",
    "run_artifacts",
    "save_arrays",
    "save_run",
    "verdict",
    "verified_on",
    "where_am_i",
]

# `run_artifacts`' result: {"info": {...}, "outputs": {key: array}}
Run: TypeAlias = dict[str, Any]
# one row of `compare`: artifact, model, mode, delegate, levels {figures}
Row: TypeAlias = dict[str, Any]

# XNNPACK (the default CPU path), the interpreter's builtin kernels, and
# TFLite's portable reference kernels
DELEGATES = ("xnnpack", "cpu", "portable")
# kernels with no architecture-specific rounding: an int8 graph (these
# modes) computes equal integers through them on every machine;
# dynamic-range (`cpu`, `dynamic`) and mixed graphs compute partly in
# float, and so do some int16 reference kernels (docs/raspberry_pi.md)
EXACT_DELEGATES = ("portable",)
INTEGER_ONLY_MODES = modes.integer_only_modes()
# modes whose kernels are float end to end; all others compute in integers
FLOAT_MODES = modes.float_modes()
# float: the same maths, another instruction set; integer: the fidelity an
# int8 artifact should keep across machines (docs/raspberry_pi.md says
# which levels meet it)
MAX_FLOAT_RELATIVE = 1e-5
MIN_INT_COSINE = 0.999
# the device's int8 error may exceed the reference machine's by this
# factor: a margin over what ARM's one-rounding kernels add
MAX_INT8_ERROR_RATIO = 1.25


def where_am_i() -> dict[str, str | None]:
    """Architecture, CPU and emulation of this process, for a run record."""
    cpu = read_cpuinfo() or {}
    return {
        "arch": platform.machine(),
        "cpu": cpu.get("model name") or cpu.get("model") or cpu.get("cpu part"),
        "emulated": os.environ.get("EDGE_BACKBONES_EMULATED") or None,
        "python": platform.python_version(),
    }


def verified_on(model: EdgeModel) -> dict[str, str | None]:
    """Where an `EdgeModel` ran: the `verified_on` block of an artifact.

    TFLite's int8 kernels round differently on ARM and x86, so an int8
    artifact's fidelity holds for the architecture and runtime that
    measured it (docs/raspberry_pi.md).
    """
    here = where_am_i()
    return {
        "arch": here["arch"],
        "emulated": here["emulated"],
        "runtime": f"{model.backend.name} {model.backend.version}",
        "delegate": model.active_delegate,
    }


def holdout_inputs(
    paths: Iterable[str], calibration: str | os.PathLike[str], count: int = 4
) -> dict[str, npt.NDArray[Any]]:
    """{model name: (count, H, W, C)} float32 held-out photos, preprocessed
    with each model's own metadata.

    Raises:
        CalibrationError: no usable photos in `calibration`.
    """
    image_set = load_calibration_set(calibration, decode=load_image)
    photos = image_set.holdout[:count]
    inputs = {}
    for path in paths:
        name = _metadata(path)["model"]["name"]
        if name not in inputs:
            model = EdgeModel(path)
            inputs[name] = np.stack([model.preprocess(p) for p in photos])
    return inputs


def _metadata(path: str) -> dict[str, Any]:
    return read_metadata(path, read_model_file(path)) or {}


def _key(stem: str, delegate: str, level: str) -> str:
    return f"{stem}/{delegate}/{level}"


def _cannot_run(path: str, backend: str, isolate: bool) -> str | None:
    """Why `backend` cannot run `path` (None if it can).

    With `isolate`, one zero input first runs in a child process, so an
    interpreter that crashes on a graph (tflite-runtime 2.14 does on our
    full-int8 ones) is reported instead of killing the caller.
    """
    if isolate:
        probe = (
            "import sys, numpy as np\n"
            "from edge_backbones.runtime import EdgeModel\n"
            "from edge_backbones.errors import ModelFileError\n"
            "try:\n"
            "    m = EdgeModel(sys.argv[1], backend=sys.argv[2])\n"
            "except ModelFileError:\n"
            "    sys.exit(0)  # the parent reports the error itself\n"
            "m(np.zeros(m.input_spec.shape, np.float32))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe, path, backend],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode < 0:
            return (
                f"the {backend} interpreter crashed running it (signal "
                f"{-done.returncode}); run it with ai-edge-litert "
                "(backend='litert')"
            )
    try:
        EdgeModel(path, ("cpu",), backend=backend)
    except ModelFileError as exc:
        return str(exc)
    return None


def run_artifacts(
    paths: Iterable[str],
    inputs: Mapping[str, npt.NDArray[Any]],
    backend: str | None = None,
    delegates: Sequence[str] = DELEGATES,
    isolate: bool = False,
) -> Run:
    """Runs every artifact through each delegate on its model's inputs.

    Returns {"info": {...}, "outputs": {"stem/delegate/level": array}};
    one thread, so thread partitioning cannot change the sums' order. An
    artifact this interpreter cannot load (an op version newer than it
    knows, or with `isolate`, one that crashes it) is listed in
    info["unloadable"] with the reason.

    Raises:
        DelegateUnavailableError: a delegate of `delegates` did not load.
        MissingDependencyError: `backend` is not installed.
    """
    outputs, artifacts, unloadable = {}, {}, {}
    used = load_backend(backend)
    for path in paths:
        metadata = _metadata(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        batch = inputs[metadata["model"]["name"]]
        reason = _cannot_run(path, used.name, isolate)
        if reason:
            unloadable[stem] = reason
            continue
        for delegate in delegates:
            model = EdgeModel(
                path, (delegate,), num_threads=1, strict=True, backend=used.name
            )
            stacked = model.run_batch(batch)
            for level in model.output_names:
                outputs[_key(stem, delegate, level)] = stacked[level]
        artifacts[stem] = {
            "model": metadata["model"]["name"],
            "mode": metadata["mode"],
            "levels": {
                level: (spec.quantization or {}).get("scale")
                for level, spec in model.output_specs.items()
            },
        }
    info = {
        **where_am_i(),
        "backend": used.name,
        "backend_version": used.version,
        "delegates": list(delegates),
        "artifacts": artifacts,
        "unloadable": unloadable,
    }
    return {"info": info, "outputs": outputs}


def save_arrays(
    path: str | os.PathLike[str], arrays: Mapping[str, Any]
) -> None:
    """Writes `arrays` as one .npz file, atomically."""
    path = os.fspath(path)
    staging = stage_file(path, b"")
    try:
        with open(staging, "wb") as f:
            np.savez(f, **arrays)
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise


def load_arrays(path: str | os.PathLike[str]) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a `save_arrays` file, by name."""
    with np.load(os.fspath(path)) as data:
        return {key: data[key] for key in data.files}


def save_run(folder: str | os.PathLike[str], name: str, run: Run) -> None:
    """Writes `run` as `<name>.npz` and `<name>.json` in `folder`."""
    save_arrays(os.path.join(folder, f"{name}.npz"), run["outputs"])
    write_json_atomic(os.path.join(folder, f"{name}.json"), run["info"])


def load_run(folder: str | os.PathLike[str], name: str) -> Run:
    """The run `save_run` wrote.

    Raises:
        InputError: there is no run `name` in `folder`.
    """
    json_path = os.path.join(folder, f"{name}.json")
    if not os.path.isfile(json_path):
        raise InputError(
            f"No run {name!r} in {os.fspath(folder)!r} ({json_path} is "
            "missing). Record it first with parity.run_artifacts + save_run."
        )
    with open(json_path) as f:
        info = json.load(f)
    return {
        "info": info,
        "outputs": load_arrays(os.path.join(folder, f"{name}.npz")),
    }


def _level_figures(
    ref: npt.NDArray[Any],
    out: npt.NDArray[Any],
    scale: float | None,
    fp32_ref: npt.NDArray[Any] | None,
    fp32_out: npt.NDArray[Any] | None,
) -> dict[str, Any]:
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    peak = float(np.max(np.abs(ref))) or 1.0
    figures = {
        "exact": bool(np.array_equal(ref, out)),
        "max_abs": float(np.max(diff)),
        "max_relative": float(np.max(diff)) / peak,
        "differing": float(np.mean(diff > 0)),
        "cosine": min_cosine(ref, out),
        # quantization steps apart (outputs dequantized with `scale`)
        "max_steps": None if scale is None else int(round(diff.max() / scale)),
    }
    if fp32_out is not None and fp32_ref is not None:  # set together
        # each machine's own int8 error: against its own fp32 outputs
        figures["fidelity"] = min_cosine(fp32_out, out)
        figures["reference_fidelity"] = min_cosine(fp32_ref, ref)
    return figures


def compare(reference: Run, device: Run) -> list[Row]:
    """Rows: artifact x delegate, per level figures vs `reference` and
    the device's fidelity (cosine vs the fp32 artifact of the same model,
    same delegate, run on the device). Artifacts the device could not load
    are left out (see device["info"]["unloadable"]).

    Raises:
        InputError: the device run lacks an output the reference has.
    """
    skipped = device["info"].get("unloadable", {})
    artifacts = {
        stem: artifact
        for stem, artifact in reference["info"]["artifacts"].items()
        if stem not in skipped
    }
    fp32 = {a["model"]: s for s, a in artifacts.items() if a["mode"] == "fp32"}
    rows = []
    for stem, artifact in artifacts.items():
        for delegate in device["info"]["delegates"]:
            levels = {}
            for level, scale in artifact["levels"].items():
                key = _key(stem, delegate, level)
                if key not in device["outputs"]:
                    raise InputError(
                        f"The device run has no output {key!r}; it ran "
                        f"{sorted(device['info']['artifacts'])}. Run the "
                        "same artifacts on both machines."
                    )
                base = fp32.get(artifact["model"])
                fp32_ref = fp32_out = None
                if base not in (None, stem):
                    base_key = _key(base, delegate, level)
                    fp32_ref = reference["outputs"][base_key]
                    fp32_out = device["outputs"][base_key]
                levels[level] = _level_figures(
                    reference["outputs"][key],
                    device["outputs"][key],
                    scale,
                    fp32_ref,
                    fp32_out,
                )
            rows.append(
                {
                    "artifact": stem,
                    "model": artifact["model"],
                    "mode": artifact["mode"],
                    "delegate": delegate,
                    "levels": levels,
                }
            )
    return rows


def _integer_level(
    figures: Mapping[str, Any], where: str, row: Row
) -> tuple[str, list[str]]:
    """(how one integer level agrees, [reasons it is out of bounds])."""
    problems = []
    delegate = row["delegate"]
    exact_expected = (
        delegate in EXACT_DELEGATES and row["mode"] in INTEGER_ONLY_MODES
    )
    if exact_expected and not figures["exact"]:
        problems.append(
            f"{where}: the {delegate} kernels round the same on every "
            f"machine, but {figures['differing']:.2%} of the values differ "
            f"(up to {figures['max_steps']} steps)"
        )
    if "fidelity" not in figures:
        kind = "exact" if figures["exact"] else f"cosine >= {MIN_INT_COSINE}"
        if figures["cosine"] < MIN_INT_COSINE:
            problems.append(
                f"{where}: integer outputs differ (cosine "
                f"{figures['cosine']:.5f} < {MIN_INT_COSINE}) and no fp32 "
                "run measures the int8 error they could be compared with"
            )
        return kind, problems
    error = 1 - figures["fidelity"]
    reference_error = 1 - figures["reference_fidelity"]
    if error > MAX_INT8_ERROR_RATIO * reference_error + 1e-6:
        problems.append(
            f"{where}: int8 error here (1 - cosine vs this machine's fp32 "
            f"output) {error:.2e} is more than {MAX_INT8_ERROR_RATIO}x the "
            f"reference machine's {reference_error:.2e}"
        )
    if figures["exact"]:
        return "exact", problems
    if figures["cosine"] >= MIN_INT_COSINE:
        return f"cosine >= {MIN_INT_COSINE}", problems
    apart = 1 - figures["cosine"]
    if apart <= error + reference_error:
        return "within int8 error", problems
    problems.append(
        f"{where}: integer outputs differ (1 - cosine {apart:.2e}) "
        f"more than the two machines' int8 errors together ({error:.2e} + "
        f"{reference_error:.2e}): worse than two independent roundings"
    )
    return "within int8 error", problems


def verdict(row: Row) -> tuple[str, list[str]]:
    """(how `row` from `compare` is within bounds, [reasons it is not]).

    Float modes must agree to MAX_FLOAT_RELATIVE of each level's peak.
    Integer modes, on every level:
    - INTEGER_ONLY_MODES through EXACT_DELEGATES (TFLite's portable
      reference kernels): the same integers on both machines;
    - the int8 error measured here (1 - cosine against this machine's own
      fp32 output) is at most MAX_INT8_ERROR_RATIO times the reference
      machine's;
    - the outputs are "exact", or within MIN_INT_COSINE, or else "within
      int8 error": 1 - cosine(device, reference) is at most the sum of the
      two machines' int8 errors. Two independent roundings of the same
      float values land that far apart; ARM and x86 kernels that share
      weights and scales and differ only in rounding ties land closer
      (docs/raspberry_pi.md). An anticorrelated, biased or broken kernel
      lands further.
    """
    problems, kinds = [], set()
    for level, figures in row["levels"].items():
        where = f"{row['artifact']} {row['delegate']} {level}"
        if row["mode"] in FLOAT_MODES:
            kinds.add("exact" if figures["exact"] else "float rounding")
            if figures["max_relative"] > MAX_FLOAT_RELATIVE:
                problems.append(
                    f"{where}: float outputs differ by "
                    f"{figures['max_relative']:.2e} of the level's peak "
                    f"(bound {MAX_FLOAT_RELATIVE:g})"
                )
            continue
        kind, level_problems = _integer_level(figures, where, row)
        kinds.add(kind)
        problems += level_problems
    order: tuple[str, ...] = (
        "within int8 error",
        f"cosine >= {MIN_INT_COSINE}",
    )
    order += ("float rounding", "exact")
    kind = next((k for k in order if k in kinds), "exact")
    return ("OUT OF BOUNDS" if problems else kind), problems
