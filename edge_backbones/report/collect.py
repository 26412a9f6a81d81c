"""Runs a report: times each artifact at each thread count, row by row.

Two entry points share one loop:

- `collect_artifacts(folder)` times .tflite files exported elsewhere and
  takes their fidelity from the metadata the exporter embedded. Neither it
  nor its worker processes import TensorFlow or Keras, so a Raspberry Pi
  with only the runtime can run it.
- `collect_recipe(recipe)` exports the recipe's models first (the exporter
  verifies each artifact against the Keras float model on held-out photos
  and records that fidelity), then times them and, as a baseline, the Keras
  float model on TensorFlow CPU, in the same run.

Each row is timed in a fresh process (`report.worker`) and written to the
device's result file as soon as it is done (see `records.ResultFile`).
"""

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from edge_backbones.atomic_io import dumps_json
from edge_backbones.core.modes import names as mode_names
from edge_backbones.errors import (
    FidelityError,
    MetadataError,
    ModelFileError,
    ReportError,
)
from edge_backbones.report.deployment import deployment_fields
from edge_backbones.report.records import (
    ResultFile,
    describe_device,
    finite_fidelity,
    new_run,
    row_key,
)
from edge_backbones.report.thermal import snapshot
from edge_backbones.runtime.macs import count_macs
from edge_backbones.runtime.metadata import (
    METADATA_NAME,
    file_sha256,
    read_metadata,
)
from edge_backbones.runtime.model_file import read_model_file

__all__ = [
    "sam_fields",
    "RunSettings",
    "collect_artifacts",
    "collect_recipe",
    "find_artifacts",
    "recipe_artifacts",
    "recipe_exports",
    "result_path",
    "row_label",
    "scan_artifacts",
    "timed_row",
]


def _log(message):
    print(f"report: {message}", file=sys.stderr, flush=True)


def _order(artifact):
    meta = artifact["metadata"]
    mode = meta["mode"]
    # the mode registry's order: fp32 first, the baseline the other modes
    # of a model are compared with
    order = mode_names()
    rank = order.index(mode) if mode in order else len(order)
    return (meta["model"]["name"], meta["input"]["shape"], rank, mode)


def _artifact(path):
    """An exported model's path, metadata, hash and MAC count (None, with a
    note on stderr, if it carries no metadata). A file that cannot be read
    (corrupt, bit-flipped, incomplete metadata) raises a ModelFileError or
    MetadataError."""
    parsed = read_model_file(path)
    metadata = read_metadata(path, parsed)
    if metadata is None:
        _log(f"skipping {path}: no {METADATA_NAME!r} metadata")
        return None
    _check_report_fields(path, metadata)
    return {
        "path": path,
        "metadata": metadata,
        "sha256": file_sha256(path),
        "macs": count_macs(parsed)["total"],
    }


def _check_report_fields(path, metadata):
    """The metadata fields a report row is built from must be there."""
    model = metadata.get("model")
    problem = None
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        problem = "no 'model' object with a 'name'"
    elif not isinstance(metadata.get("mode"), str):
        problem = "no 'mode'"
    elif (
        not isinstance(metadata["input"].get("shape"), list)
        or len(metadata["input"]["shape"]) != 4
    ):
        problem = "no 4-D 'input.shape'"
    if problem:
        raise MetadataError(
            f"The metadata of {path!r} has {problem}, which a report row "
            "needs (model name, mode, input size). It was edited or written "
            "by another tool: export the model again with edge_backbones."
        )


def scan_artifacts(
    folder: str,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(artifacts, failures) under `folder`: every .tflite that carries our
    metadata, fp32 first, and [(path, reason)] for those that cannot be
    read. Hidden folders (an export's `.export-*` work folder left by a
    killed export, `.git`, ...) are not looked into.

    Raises:
        ModelFileError: `folder` is not a folder.
    """
    if not os.path.isdir(folder):
        raise ModelFileError(
            f"--artifacts {str(folder)!r} is not a folder. Pass the folder "
            "`edge-backbones export` wrote its .tflite files to."
        )
    artifacts, failures = [], []
    for root, dirs, files in os.walk(folder):
        hidden = sorted(d for d in dirs if d.startswith("."))
        for name in hidden:
            _log(f"ignoring hidden folder {os.path.join(root, name)}")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".tflite") or name.startswith("."):
                continue
            path = os.path.join(root, name)
            try:
                artifact = _artifact(path)
            except (ModelFileError, MetadataError) as exc:
                _log(f"FAILED: {path}: {exc}")
                failures.append((path, f"{type(exc).__name__}: {exc}"))
                continue
            if artifact is not None:
                artifacts.append(artifact)
    return sorted(artifacts, key=_order), failures


def find_artifacts(folder: str) -> list[dict[str, Any]]:
    """Every readable .tflite under `folder` with our metadata, fp32 first.

    Files without the metadata are skipped with a note on stderr: their
    model, mode and fidelity would be guesses; unreadable ones too (see
    `scan_artifacts`).

    Raises:
        ModelFileError: `folder` is not a folder, or holds no readable
            artifact.
    """
    artifacts, failures = scan_artifacts(folder)
    _require_some(artifacts, failures, folder)
    return artifacts


def _require_some(artifacts, failures, folder):
    if not artifacts:
        reasons = "".join(f" {path}: {why}." for path, why in failures)
        raise ModelFileError(
            f"No .tflite with {METADATA_NAME!r} metadata could be read "
            f"under {str(folder)!r}.{reasons} Export models there first with "
            "`edge-backbones export`."
        )


def _model_record(meta):
    model = meta["model"]
    return {
        "name": model["name"],
        "class_name": model.get("class_name"),
        "params": model.get("params"),
        "weights": model.get("weights"),
    }


def _task_record(meta):
    """A segmenter's masks as its export verified them (None for a
    backbone): agreement with the float model's class maps, and with
    `--labels` the true mIoU; the class names stay in the artifact."""
    task = meta.get("task") or {}
    if task.get("kind") != "segmentation" or "verification" not in task:
        return None
    return {
        "kind": task["kind"],
        "num_classes": task.get("num_classes"),
        "verification": task["verification"],
    }


def sam_fields(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """A SAM artifact's part ("encoder" or "decoder") and, for a decoder,
    its mask IoU against the float model (held-out photos x the fixed
    prompt set) and IoU-prediction error; None for any other model."""
    task = meta.get("task")
    if not isinstance(task, dict):
        return None
    kind = task.get("kind")
    if kind == "sam_encoder":
        return {"part": "encoder"}
    if kind != "sam_decoder":
        return None
    verification = task.get("prompt_verification") or {}
    iou = verification.get("mask_iou") or {}
    return {
        "part": "decoder",
        "mask_iou_mean": iou.get("mean"),
        "mask_iou_worst": iou.get("worst"),
        "iou_prediction_max_error": verification.get(
            "iou_prediction_max_error"
        ),
        "prompts": verification.get("prompts"),
    }


def _tflite_row(artifact, threads, out):
    meta = artifact["metadata"]
    fidelity = meta.get("fidelity")
    deployment = deployment_fields(meta)
    mode = meta["mode"]
    if deployment:
        mode = f"{mode}@{deployment['soc']}"
    return {
        "kind": "tflite",
        "model": _model_record(meta),
        "mode": mode,
        "deployment": deployment,
        "recipe": meta.get("recipe"),
        "input": {
            "shape": meta["input"]["shape"],
            "dtype": meta["input"]["dtype"],
        },
        "artifact": {
            "path": os.path.relpath(artifact["path"], out),
            "sha256": artifact["sha256"],
            "size_bytes": os.path.getsize(artifact["path"]),
            "created": meta.get("created"),
        },
        "threads": threads,
        "macs": artifact["macs"],
        "task": _task_record(meta),
        **({"sam": sam} if (sam := sam_fields(meta)) else {}),
        "fidelity": {
            **finite_fidelity(fidelity),
            "source": fidelity.get("label", "artifact metadata"),
            # where that fidelity was measured: int8 kernels round
            # differently on ARM and x86 (docs/raspberry_pi.md)
            "verified_on": meta.get("verified_on"),
        }
        if fidelity
        else None,
    }


def _gpu_row(artifact, threads, out):
    """A `gpu` artifact on LiteRT's GPU accelerator. Its fidelity is the one
    the export check measured on the GPU (absent if it did not run)."""
    row = _tflite_row(artifact, threads, out)
    gpu_run = artifact["metadata"].get("graph", {}).get("gpu_run") or {}
    fidelity = None
    if gpu_run.get("status") == "ran":
        fidelity = {
            "levels": {
                name: {"cosine": cosine}
                for name, cosine in gpu_run["cosine"].items()
            },
            "source": f"export check on {gpu_run['device']}",
        }
    # the export scored masks on the CPU; the GPU run measured cosines only
    return {**row, "kind": "gpu", "fidelity": fidelity, "task": None}


def _keras_row(artifact, threads):
    """The Keras baseline of the model and size of an fp32 artifact."""
    meta = artifact["metadata"]
    return {
        "kind": "keras",
        "model": _model_record(meta),
        "mode": "keras",
        "recipe": None,
        "input": {"shape": meta["input"]["shape"], "dtype": "float32"},
        "artifact": None,
        "threads": threads,
        "macs": artifact["macs"],
        "fidelity": None,  # the reference itself
    }


def _job(row, artifact, runs, warmup):
    job = {
        "kind": row["kind"],
        "threads": row["threads"],
        "runs": runs,
        "warmup": warmup,
    }
    if row["kind"] in ("tflite", "gpu"):
        sam = row.get("sam") or {}
        return {
            **job,
            "path": os.path.abspath(artifact["path"]),
            **({"sam_part": sam["part"]} if sam else {}),
        }
    meta = artifact["metadata"]
    return {
        **job,
        "class_name": meta["model"]["class_name"],
        "config": meta["model"]["config"],
        "shape": meta["input"]["shape"],
        "out_features": list(meta["outputs"]),
    }


def _run_worker(job):
    """Runs one job in a fresh process and returns its result.

    A .tflite job's progress lines pass through to stderr; TensorFlow's
    start-up chatter is shown only if the job fails.
    """
    quiet = job["kind"] == "keras"
    proc = subprocess.run(
        [sys.executable, "-m", "edge_backbones.report.worker", dumps_json(job)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        if quiet:
            sys.stderr.write(proc.stderr or "")
        code = proc.returncode
        how = f"exited with code {code}"
        if code < 0:
            how = f"was killed by signal {-code}"
        raise ReportError(
            f"the {job['kind']} timing process {how}: "
            + (_worker_error(lines) or "its error is above.")
        )
    return _parse_timing(lines[-1], job)


# what a worker's result must hold for a row (see `_measure`)
_TIMING_KEYS = (
    *("backend", "delegate", "fully_delegated", "init_ms", "latency_ms"),
    "peak_rss_mb",
)


def _worker_error(lines):
    """The typed error a failed worker wrote as its last stdout line
    (`report.worker`), or None."""
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    if isinstance(last, dict) and isinstance(last.get("error"), str):
        return last["error"]
    return None


def _parse_timing(line, job):
    """The worker's last stdout line -> its result; ReportError if it is
    not the JSON object a worker writes (something else printed last)."""
    try:
        timing = json.loads(line)
    except ValueError:
        timing = None
    missing = (
        None
        if not isinstance(timing, dict)
        else [k for k in _TIMING_KEYS if k not in timing]
    )
    if missing is None or missing or "median" not in timing["latency_ms"]:
        raise ReportError(
            f"the {job['kind']} timing process ended with {line[:200]!r}, "
            "not its JSON result"
            + (f" (missing {missing})" if missing else "")
            + ". Something else wrote to its stdout: run the row alone "
            "with `edge-backbones bench` to see it."
        )
    return timing


def row_label(row: Mapping[str, Any]) -> str:
    """`mit_b0 int8 224x224 threads=4`: a row in progress lines."""
    return (
        f"{row['model']['name']} {row['mode']} "
        f"{'x'.join(map(str, row['input']['shape'][1:3]))} "
        f"threads={row['threads']}"
    )


def timed_row(
    row: Mapping[str, Any], timing: Mapping[str, Any]
) -> dict[str, Any]:
    """The result file's row: the planned `row` with a worker's `timing`."""
    median_s = timing["latency_ms"]["median"] / 1e3
    return {
        **row,
        "backend": timing["backend"],
        "delegate": timing["delegate"],
        "fully_delegated": timing["fully_delegated"],
        # op name -> count of the ops the delegate left to the CPU
        "cpu_ops": timing.get("cpu_ops"),
        "init_ms": timing["init_ms"],
        "latency_ms": timing["latency_ms"],
        "peak_rss_mb": timing["peak_rss_mb"],
        # an NPU-compiled graph is DISPATCH_OPs: no MACs to count
        "gmacs_per_s": row["macs"] / median_s / 1e9 if row["macs"] else None,
        # read right after the timing: a throttled board shows here
        "thermal": timing.get("thermal") or snapshot(),
        **{
            key: timing[key]
            for key in ("gpu_device", "software_driver")
            if key in timing
        },
    }


def _measure(results, plan, runs, warmup):
    """Times each planned row not already in `results`; returns failures."""
    failures = []
    for index, (row, artifact) in enumerate(plan, 1):
        label = f"[{index}/{len(plan)}] {row_label(row)}"
        if results.has(row):
            _log(f"{label}: done in an earlier run, skipped (--resume)")
            continue
        _log(f"{label}: timing...")
        try:
            timing = _run_worker(_job(row, artifact, runs, warmup))
        except ReportError as exc:
            _log(f"{label}: FAILED: {exc}")
            failures.append(label)
            results.fail(label, str(exc), key=row_key(row))
            continue
        row = results.add(timed_row(row, timing))
        latency = row["latency_ms"]
        gmacs = row["gmacs_per_s"]
        _log(
            f"{label}: {latency['median']:.2f} ms median (p5 "
            f"{latency['p5']:.2f}, p95 {latency['p95']:.2f})"
            + (f", {gmacs:.2f} GMAC/s" if gmacs is not None else "")
        )
    return failures


def _gpu_usable():
    from edge_backbones.runtime import gpu_probe

    verdict = gpu_probe.gpu_verdict()
    if not verdict.usable:
        _log(f"no gpu rows: no GPU adapter ({verdict.reason})")
    elif verdict.software:
        _log(
            f"gpu rows on {verdict.device}: a software driver, so their "
            "timings are shown as software, never as GPU speeds"
        )
    return verdict.usable


def result_path(out: str, device_name: str) -> str:
    """`<out>/<device name>.json`, the name made safe for a file."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in device_name)
    return os.path.join(out, f"{stem}.json")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Where a report run writes its result file and how it times rows."""

    out: str  # the folder of <device name>.json
    device_name: str
    threads: tuple[int, ...] = (1,)  # a row per artifact and thread count
    runs: int = 50  # timed runs per row
    warmup: int = 5  # untimed runs first
    resume: bool = False  # keep the rows already in the result file
    command: str | None = None  # the command line, recorded with the run


def _plan(artifacts, settings, *, keras, gpu):
    """(row, artifact) pairs to time, in order."""
    threads, out = settings.threads, settings.out
    plan = []
    for artifact in artifacts:
        # a model of your own (export/foreign_model.py) has no config to
        # rebuild its Keras baseline from; its .tflite rows are measured
        foreign = "format" in artifact["metadata"]["model"].get("config", {})
        # the SAM decoder's Keras baseline is no backbone's: not timed
        decoder = (sam_fields(artifact["metadata"]) or {}).get("part") == (
            "decoder"
        )
        if (
            keras
            and artifact["metadata"]["mode"] == "fp32"
            and not (foreign or decoder)
        ):
            plan += [(_keras_row(artifact, n), artifact) for n in threads]
        plan += [(_tflite_row(artifact, n, out), artifact) for n in threads]
        if gpu and artifact["metadata"]["mode"] == "gpu":
            # the GPU does not use the CPU thread count: one row
            plan.append((_gpu_row(artifact, threads[0], out), artifact))
    return plan


def _collect(artifacts, source, settings, *, keras, unreadable=(), gpu=False):
    """Plans and times the rows of `artifacts`; returns the result path."""
    if gpu:
        gpu = _gpu_usable()
    plan = _plan(artifacts, settings, keras=keras, gpu=gpu)
    run_settings = {
        "source": source,
        "threads": list(settings.threads),
        "runs": settings.runs,
        "warmup": settings.warmup,
    }
    path = result_path(settings.out, settings.device_name)
    if os.path.exists(path) and not settings.resume:
        _log(f"replacing {path} (--resume would keep its rows)")
    results = ResultFile(
        path,
        describe_device(settings.device_name),
        new_run(settings.command, run_settings),
        resume=settings.resume,
    )
    for what, reason in unreadable:
        results.fail(os.path.relpath(what, settings.out), reason)
    failures = [what for what, _ in unreadable]
    failures += _measure(results, plan, settings.runs, settings.warmup)
    results.finish()
    if failures:
        error = ReportError(
            f"{len(failures)} artifact(s) or row(s) failed: {failures}. The "
            f"other rows are in {results.path}; fix the cause (see above) "
            "and run again with --resume to time only the missing rows."
        )
        # the caller can still render what was measured
        error.result_path = results.path
        raise error
    return results.path


def collect_artifacts(
    folder: str,
    out: str,
    device_name: str,
    *,
    gpu: bool = False,
    **settings: Any,
) -> str:
    """Times every artifact under `folder`; returns the result file's path.

    `settings` are the other fields of `RunSettings` (threads, runs,
    warmup, resume, command). No TensorFlow: fidelity comes from each
    artifact's metadata, and the fp32 artifact (when there is one) is the
    baseline. A file that cannot be read is listed as failed in the result
    file (with its reason); the others are timed, and a ReportError (with
    `result_path`) says so last. With `gpu`, each `gpu` artifact also gets
    a row on LiteRT's GPU accelerator (when an adapter is usable) at its
    first thread count.

    Raises:
        ModelFileError: `folder` holds no readable artifact.
        ReportError: some rows failed (the others are in the file).
    """
    run = RunSettings(out, device_name, **settings)
    artifacts, unreadable = scan_artifacts(folder)
    _require_some(artifacts, unreadable, folder)
    source = {"artifacts": os.path.abspath(folder)}
    return _collect(
        artifacts, source, run, keras=False, unreadable=unreadable, gpu=gpu
    )


def collect_recipe(
    recipe: str, out: str, device_name: str, **settings: Any
) -> str:
    """Exports what `recipe` names, then times it; returns the result path.

    `settings` are the other fields of `RunSettings`. Adds the Keras float
    model on TensorFlow CPU as a baseline row per model and thread count.
    An artifact that fails its fidelity gate is reported (in the run's
    record and on stderr) and left out; the others are timed. With
    `resume`, models whose artifacts all exist are not exported again.

    Raises:
        InputError: a missing or malformed recipe.
        ReportError: nothing could be exported, or some rows failed.
    """
    from edge_backbones.exporter import export

    run = RunSettings(out, device_name, **settings)
    artifacts: list[dict[str, Any]] = []
    export_failures: list[str] = []
    for kwargs in recipe_exports(recipe, out, run.resume):
        try:
            export(**kwargs)
        except FidelityError as exc:
            _log(f"export: {exc}")
            export_failures.append(str(exc))
    artifacts, source = recipe_artifacts(recipe, out, export_failures)
    return _collect(artifacts, source, run, keras=True)


def recipe_exports(recipe: str, out: str, resume: bool) -> list[dict[str, Any]]:
    """The export() keywords of each export the recipe still needs (with
    `resume`, those whose artifacts all exist are reused, with a note)."""
    from edge_backbones.report.recipe import expected_stems, load_exports

    todo = []
    for kwargs in load_exports(recipe, os.path.join(out, "artifacts")):
        paths = [
            os.path.join(kwargs["out"], stem + ".tflite")
            for stem in expected_stems(kwargs)
        ]
        if resume and all(os.path.isfile(p) for p in paths):
            _log(f"{paths[0]} etc. exported by an earlier run, reused")
        else:
            todo.append(kwargs)
    return todo


def recipe_artifacts(
    recipe: str, out: str, export_failures: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(artifacts, the run's source record) the recipe's exports left in
    `out`, fp32 first; ReportError if there are none."""
    from edge_backbones.report.recipe import expected_stems, load_exports

    artifacts = []
    for kwargs in load_exports(recipe, os.path.join(out, "artifacts")):
        for stem in expected_stems(kwargs):
            path = os.path.join(kwargs["out"], stem + ".tflite")
            found = _artifact(path) if os.path.isfile(path) else None
            if found is not None:
                artifacts.append(found)
    if not artifacts:
        raise ReportError(
            f"Recipe {recipe!r} produced no artifact to time "
            f"({export_failures}). Fix the export first: "
            f"`edge-backbones export --recipe {recipe}`."
        )
    source = {
        "recipe": os.path.abspath(recipe),
        "export_failures": export_failures,
    }
    return sorted(artifacts, key=_order), source
