"""`export(...)`: one call from a backbone to verified .tflite artifacts.

A pipeline of stages:
- `plan_export`: every option and name checked, the model built and the
  photos split, before any conversion (an `ExportPlan`);
- `_prepare`: the serving graph, its float reference outputs and the
  converters (a `Workbench`);
- per mode or target (`modes.Plan`): `_convert` (SavedModel ->
  TFLiteConverter, builtins only) -> `_check_graph` (the scheme's device
  checks) -> `_verify` (the runtime's `EdgeModel` on held-out photos,
  every level against the Keras float model, below the gate nothing is
  written) -> write, atomically, with our metadata embedded and as a
  sidecar JSON;
- with `min_cos`, `_select` times the candidates and keeps the fastest.
Progress goes to stderr; each artifact ends with one line: mode, path,
size, time, fidelity.
"""

import contextlib
import dataclasses
import gc
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from edge_backbones.atomic_io import dumps_json, write_file_atomic
from edge_backbones.core import fidelity as fidelity_lib
from edge_backbones.core import modes as modes_lib
from edge_backbones.core import workspace as workspace_lib
from edge_backbones.errors import (
    CalibrationError,
    ExportError,
    FidelityError,
    InputError,
    WeightsNotFoundError,
)
from edge_backbones.exporter import budget as budget_lib
from edge_backbones.exporter import calibration as calibration_lib
from edge_backbones.exporter import (
    disk,
    gpu_check,
    isolated,
    memory,
    segmentation,
    tflite_metadata,
    verify,
)
from edge_backbones.exporter import graph as graph_lib
from edge_backbones.exporter import options as options_lib
from edge_backbones.exporter import recipes as recipes_lib
from edge_backbones.exporter import sam as sam_export
from edge_backbones.exporter.convert import Converter, gpu_compatibility
from edge_backbones.text import megabytes, split_commas

if TYPE_CHECKING:
    from typing_extensions import Unpack


__all__ = [
    "ArtifactRecord",
    "ExportPlan",
    "Workbench",
    "export",
    "export_job",
    "load_backbone",
    "plan_export",
]


@dataclasses.dataclass
class ArtifactRecord:
    """One exported, verified artifact."""

    mode: str
    path: str | None
    size_bytes: int
    seconds: float
    fidelity: dict[str, Any] | None  # level -> figures ("cosine", ...)
    metadata: dict[str, Any]  # what the artifact embeds
    latency_ms: float | None = None

    def summary(self) -> str:
        """The one line printed when the artifact is done."""
        size = f"{megabytes(self.size_bytes):.2f} MB"
        figures = (
            fidelity_lib.format_fidelity(self.fidelity)
            if self.fidelity
            else "not verified"
        )
        return (
            f"{self.mode:<8} {self.path}  {size}  {self.seconds:.1f} s  "
            f"{figures}"
        )


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _check_options(job):
    """InputError for a threshold of no mode or an I/O type of no plan."""
    from edge_backbones.exporter.convert import INT8_IO_DTYPES

    gates = modes_lib.default_min_cosine()
    unknown = sorted(
        set(job.thresholds or {}).union(job.export.mask_thresholds or {})
        - set(gates)
    )
    if unknown:
        raise InputError(
            f"thresholds name no mode or target: {unknown}; use "
            f"{sorted(gates)} (e.g. --threshold int8=0.98)."
        )
    if job.export.io_dtype not in INT8_IO_DTYPES:
        raise InputError(
            f"io_dtype={job.export.io_dtype!r} is not an integer I/O type; "
            f"int8_io and npu take {list(INT8_IO_DTYPES)} (--io-dtype)."
        )


def _check_destinations(out, stems):
    """InputError, before any work, if an artifact's place is taken."""
    for stem in stems:
        for suffix in (".tflite", ".json"):
            workspace_lib.check_destination(os.path.join(out, stem + suffix))


def load_backbone(
    model: Any,
    random_weights: bool = False,
    image_size: tuple[int, int] | None = None,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    task: str | None = None,
) -> tuple[Any, str, str]:
    """(backbone, model name, weights source) from a name, folder or object.

    A checkpoint with a segmentation head (a SegFormer decode head) builds
    the segmenter unless `task="backbone"` (see `exporter.segmentation`).

    A preset name loads its weights from this disk only; without them it
    fails with the WeightsNotFoundError message unless `random_weights` is
    set, so a random-weight artifact is never shipped by accident. Names
    and folders are built at `image_size` (families whose weights depend on
    the size, like ViTDet's position tables, adapt them when loading).
    `config` overrides architecture arguments of a preset. Random weights
    are drawn from Keras' global generator seeded with `seed`, so the same
    command exports the same model (and the same fidelity figures).
    """
    from edge_backbones.exporter import foreign_model
    from edge_backbones.models.backbone import Backbone

    segmenter = segmentation.wants_segmenter(model, task)
    if segmentation.is_segmenter(model):
        return model, model.name, "in-memory"
    if isinstance(model, Backbone):
        return model, model.name, "in-memory"
    # any other Keras / tf-keras model, .keras/.h5 file or SavedModel
    foreign = foreign_model.as_foreign(model, image_size or (512, 512))
    if foreign is not None:
        if random_weights or config:
            raise InputError(
                "random_weights and config build our presets; "
                f"{foreign.name!r} is a model of your own with its weights."
            )
        return foreign, str(foreign.name), foreign.weights  # set at init
    kwargs = dict(config or {})
    if random_weights:
        import keras

        keras.utils.set_random_seed(seed)
    if image_size is not None:
        kwargs["image_shape"] = (*image_size, 3)
    if segmenter:
        _log(
            f"export: {os.fspath(model)!r} has a segmentation head: "
            "exporting the segmenter (outputs logits, classes); --task "
            "backbone exports the encoder's pyramid"
        )
        model = os.fspath(model)
        built, weights = segmentation.load_segmenter(
            model, random_weights, kwargs
        )
        name = os.path.basename(os.path.normpath(model))
        return built, name, weights
    sam = _sam_encoder_preset(os.fspath(model))
    if sam is not None:  # a SAM preset exports its image encoder here
        backbone, _, weights = _load_preset(sam, random_weights, kwargs)
        return backbone, os.fspath(model), weights
    return _load_preset(os.fspath(model), random_weights, kwargs)


def _load_job_model(job: options_lib.ExportJob, size: Any) -> Any:
    """The job's model at `size`: (model, name, weights)."""
    return load_backbone(
        job.model.model,
        job.model.random_weights,
        size,
        job.model.config,
        job.calibration.seed,
        job.model.task,
    )


def _sam_encoder_preset(name):
    """The image encoder preset of a SAM preset name (None otherwise)."""
    from edge_backbones.models.sam.sam_presets import sam_presets

    entry = sam_presets.get(name) if not os.path.isdir(name) else None
    return entry["image_encoder"] if entry else None


def _load_preset(model, random_weights, kwargs):
    """(backbone, name, weights) of a preset name or checkpoint folder."""
    from edge_backbones.models.backbone import Backbone

    if os.path.isdir(model):
        name = os.path.basename(os.path.normpath(model))
        weights = "random" if random_weights else os.path.abspath(model)
        backbone = Backbone.from_preset(
            model, load_weights=not random_weights, **kwargs
        )
        return backbone, name, weights
    if random_weights:
        backbone = Backbone.from_preset(model, load_weights=False, **kwargs)
        return backbone, model, "random"
    try:
        backbone = Backbone.from_preset(model, **kwargs)
    except WeightsNotFoundError as exc:
        raise WeightsNotFoundError(
            f"{exc}\nTo export the architecture with random weights (for "
            "speed tests only), say so: random_weights=True or "
            "--random-weights."
        ) from exc
    from edge_backbones.models.backbone import local_weight_candidates

    # the folder from_preset loaded: the first candidate holding a config
    found = [
        folder
        for folder in local_weight_candidates(model)
        if os.path.isfile(os.path.join(folder, "config.json"))
    ]
    return backbone, model, found[0] if found else "preset"


def _io_metadata(model, backbone, preprocessing):
    spec = model.input_spec
    info = {i.name: i for i in backbone.feature_info}
    return (
        {
            "name": spec.name,
            "shape": list(spec.shape),
            "dtype": spec.dtype,
            "quantization": spec.quantization,
            "preprocessing": preprocessing,
        },
        {
            name: {
                "shape": list(out.shape),
                "stride": info[name].stride,
                "channels": info[name].channels,
                "dtype": out.dtype,
                "quantization": out.quantization,
            }
            for name, out in model.output_specs.items()
        },
    )


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def export(
    model: Any, **options: "Unpack[options_lib.ExportKwargs]"
) -> list[ArtifactRecord]:
    """Exports `model` in each of `modes` and `targets`; verified artifacts.

    Args:
        model: a preset name ("mit_b0"), a checkpoint folder, a Backbone,
            or a model of your own (see `foreign_model.ForeignModel`): any
            Keras 3 or tf-keras model, a .keras/.h5 file, a SavedModel.
        **options: keyword options, each checked against
            `options.OPTIONS` before any work (an unknown name is an
            UnknownOptionError naming the closest one); `inspect.signature
            (export)` lists them with their defaults:
        image_size: 512, "384x640" or (384, 640): the fixed input size.
            Default: the preset's natural size (`mit_b0` 224, SAM 1024; see
            `Backbone.natural_input_size`), 512 for anything else.
        modes: names of the mode registry (`modes.toml`): fp32, fp16,
            dynamic, int8, int8_io, int16x8, int8_mixed (a list or
            "fp32,int8"). Default: fp32, or with `min_cos` and no targets,
            the registry's `select` list.
        targets: recipes per device: cpu (XNNPACK), npu, gpu.
        calibration: a folder of photos (or a CalibrationSet); one part
            calibrates, a held-out part (`holdout_fraction`) verifies.
        out: the folder for `<name>_<H>x<W>_<mode>.tflite` + `.json`.
        random_weights: build the architecture with random weights (a preset
            whose weights are not on disk fails without it).
        thresholds: {mode: minimum cosine} over the registry's gates.
        min_cos: pick one artifact: every candidate (modes + targets) is
            verified against this cosine and timed on this device with the
            runtime benchmark (`bench_runs` runs); the fastest that passes
            is kept, the others are discarded, and a table says why.
        float_layers: node names (or parts of them) kept in float in every
            int8 artifact (see `quant_debug.layer_report`); the metadata's
            `scheme.float_layers` records them and the nodes they matched.
        pixels_in_graph: the model takes raw 0-255 RGB; normalization runs
            in the graph (uint8 input for int8_io / npu).
        io_dtype: int8 or uint8, the I/O type of int8_io / npu artifacts.
        out_features: the pyramid levels to export (default: all).
        max_images: calibrate on at most this many photos.
        seed: seeds the calibration split/sample and random weights.
        allow_flex: allow select-TF (Flex) ops (edge runtimes lack them).
        num_threads: interpreter threads for verification and timing.
        layer_report: before exporting, rank the layers by int8 error
            (QuantizationDebugger on the held-out images); the table goes to
            stderr and every row to `<out>/<name>_<H>x<W>_layers.csv`.
        name: the artifacts' name stem (default: the preset or folder name).
        config: architecture overrides for a preset (e.g. a smaller
            ViTDet); with trained weights they must still fit them.
        socs: with target npu, SoCs ("SM8650,SM8750", "intel-cpu") to
            compile the npu artifact for (`edge_backbones.npu`); each
            compiled file is gated on its simulated numerics vs float.
        labels: a segmenter's label masks, one PNG of class ids per
            held-out photo named like it (255 ignored); every artifact is
            also scored by true mIoU and pixel accuracy (the metadata's
            `task.verification.labels`). Checked before any conversion.
        reduce_labels: read the masks as ADE20K's (0 = other), as
            transformers' `do_reduce_labels`.
        work_dir: the folder for the SavedModel and the candidates
            (default: a work folder inside `out`); give one on another
            file system when `out`'s is nearly full. Free space is checked
            against the export's estimate before any work (DiskSpaceError).

    Returns:
        A list of `ArtifactRecord`, one per written artifact. Raises
        FidelityError (after writing the others) if any artifact fell below
        its threshold; nothing is left where a failed artifact belongs.

    Raises:
        UnknownOptionError: an option name nothing takes (a typo).
        InputError: an option value of the wrong type or range.
        UnknownPresetError, CheckpointError, WeightsNotFoundError: a model
            that cannot be loaded.
        CalibrationError: no usable calibration photos.
        ExportError: a conversion failed (FidelityError: an artifact fell
            below its threshold; the others are written).
    """
    return export_job(options_lib.job({"model": model, **options}))


# help(), IDEs and inspect see every option of the table, with its default
export.__signature__ = options_lib.signature()  # type: ignore[attr-defined]


def export_job(job: options_lib.ExportJob) -> list[ArtifactRecord]:
    """Runs one `options.ExportJob`: plan, then per artifact convert ->
    verify -> write (or, with `min_cos`, select the fastest).

    Raises:
        ExportError: as `export` raises it, after the job's checks.
    """
    started = time.perf_counter()
    # each phase's peak resident memory, on stderr (benchmarks/memory/)
    meter = memory.PhaseMeter(_log)
    try:
        # the plan lives in _run_plan's frame only, which frees the Keras
        # model before converting in child processes
        return _run_plan(job, started, meter)
    except Exception as exc:
        full = disk.as_disk_space_error(
            exc, job.export.work_dir or job.export.out
        )
        if full is None or full is exc:
            raise
        raise full from exc


def _run_plan(job, started, meter):
    with meter.phase("build"):
        plan = plan_export(job)
    if _is_sam(plan):
        _log(
            f"export: {plan.name} is a Segment Anything checkpoint: "
            "exporting the SAM pair, its image encoder and its mask decoder "
            "in each mode"
        )
    _log(
        f"export: {plan.name} ({type(plan.backbone).__name__}, weights: "
        f"{plan.weights}) at {plan.size[0]}x{plan.size[1]}; "
        f"{len(plan.holdout)} held-out images verify "
        f"{[p.mode for p in plan.plans]}"
    )
    estimate = memory.phase_bytes(
        plan.backbone,
        plan.size,
        plan.isolated,
        sorted({p.converter for p in plan.plans}),
    )
    _log(
        "memory: estimated MiB per phase "
        + dumps_json({k: round(v / 2**20) for k, v in estimate.items()})
    )
    # every file is staged in a locked `.export-<pid>-*` folder in `out`;
    # the SavedModels and candidates in one in `work_dir` when it is given
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(workspace_lib.workspace(job.export.out))
        scratch = work
        if job.export.work_dir is not None:
            scratch = stack.enter_context(
                workspace_lib.workspace(job.export.work_dir)
            )
        workbench = _prepare(plan, work, scratch, meter)
        if plan.isolated:
            plan = _without_keras(plan)
            gc.collect()  # a Keras model's layers refer to each other
        records, failures = _export_all(plan, workbench)
        if plan.selecting:
            return _select(plan, workbench, records, failures)
        if _is_sam(plan):
            records += _export_sam_decoders(plan, workbench, failures)
        records += _compile_npu(plan, workbench, records)
        if failures:
            raise FidelityError(
                " | ".join(str(exc) for _, exc in failures)
                + f" ({len(records)} other artifact(s) were written: "
                f"{[r.path for r in records]})"
            )
        _log(f"export: done in {time.perf_counter() - started:.1f} s")
        _log(f"memory: peak RSS MiB per phase {dumps_json(meter.summary())}")
        seconds = {k: round(v, 1) for k, v in meter.seconds.items()}
        _log(f"memory: seconds per phase {dumps_json(seconds)}")
        return records


@dataclasses.dataclass(frozen=True)
class ExportPlan:
    """An export with everything checked: what `plan_export` returns."""

    job: options_lib.ExportJob
    size: tuple[int, int]  # (height, width)
    plans: tuple[Any, ...]  # modes.Plan per artifact
    socs: list[Any]  # SoCs the npu artifact is compiled for
    backbone: Any  # a Backbone or a ForeignModel
    name: str  # the artifacts' name stem
    weights: str  # where the weights came from
    out_features: list[str] | None
    float_layers: list[str]  # patterns of node names kept in float
    gates: dict[str, float]  # mode -> minimum cosine
    preprocessing: dict[str, Any]
    calibration: Any  # a CalibrationSet or None
    holdout: list[Any]  # float32 (H, W, 3) arrays that verify
    holdout_source: str
    # the Keras model is freed after tracing and each conversion runs in a
    # child process (`memory.isolate_conversion`)
    isolated: bool = False
    # a segmenter's label masks of the held-out photos, in their order
    labels: list[str] | None = None
    # per-layer precision of the one int8 plan against it (exporter.budget)
    budget: "budget_lib.Budget | None" = None

    @property
    def selecting(self) -> bool:
        """True with `min_cos`: the fastest passing artifact is kept."""
        return self.job.export.min_cos is not None

    def stem(self, mode: str | None = None) -> str:
        """The artifacts' file stem (`mit_b0_512x512[_mode]`)."""
        return recipes_lib.artifact_stem(self.name, self.size, mode)


def plan_export(job: options_lib.ExportJob) -> "ExportPlan":
    """Checks everything before any conversion; an ExportPlan.

    The order is the cheap checks first (sizes, names, the output folder)
    and the model and photos after, so a typo fails in a second.
    """
    exp = job.export
    size = options_lib.parse_image_size(_image_size(job.model))
    _check_options(job)
    budget = None if exp.budget is None else budget_lib.parse_budget(exp.budget)
    plans = _resolve_plans(exp, budget)
    gates = {**modes_lib.default_min_cosine(), **(job.thresholds or {})}
    if budget is not None:
        budget_lib.check_budget_plans(
            budget, plans, exp.min_cos, job.thresholds
        )
        if budget.min_cos is not None:
            gates[plans[0].mode] = budget.min_cos
    socs = _npu_socs(exp.socs, [p.mode for p in plans], exp.min_cos)
    memory.check_input(size)
    workspace_lib.prepare_out(exp.out)  # a file or read-only `out` fails here
    backbone, name, weights = _load_job_model(job, size)
    name = job.model.name or name
    converters = sorted({p.converter for p in plans})
    isolate = memory.isolate_conversion(
        backbone, size, _isolable(backbone, plans, exp), converters
    )
    memory.check_backbone(
        backbone, size, isolated=isolate, converters=converters
    )
    _check_flatbuffer_size(backbone, plans, name)
    if exp.work_dir is not None:
        workspace_lib.prepare_out(exp.work_dir)
    integer_graphs = {p.integer_softmax for p in plans if p.integer_layer_norm}
    disk.check_free(
        exp.out,
        exp.work_dir,
        disk.estimate(backbone.count_params(), plans, len(integer_graphs)),
    )
    stems = [recipes_lib.artifact_stem(name, size, p.mode) for p in plans]
    _check_destinations(exp.out, stems)
    preprocessing = graph_lib.model_preprocessing(backbone, exp.pixels_in_graph)
    calib = _calibration(job, plans)
    labels = segmentation.check_labels_option(
        job.calibration.labels, job.calibration.reduce_labels, backbone, calib
    )
    return ExportPlan(
        job=job,
        size=size,
        plans=plans,
        socs=socs,
        backbone=backbone,
        name=name,
        weights=weights,
        # "a,b" as in the CLI, never a string iterated character by character
        out_features=_out_features(exp.out_features, backbone, name),
        float_layers=split_commas(exp.float_layers),
        gates=gates,
        budget=budget,
        preprocessing=preprocessing,
        calibration=calib,
        holdout=calibration_lib.holdout_arrays(calib, preprocessing, size),
        holdout_source=(
            os.fspath(calib.source)
            if calib is not None and hasattr(calib, "source")
            else "synthetic: no calibration photos were given"
        ),
        isolated=isolate,
        labels=labels,
    )


def _resolve_plans(exp, budget):
    """The modes.Plan per artifact the export's modes and targets ask for
    (fp32 without either; with `min_cos`, the selection's candidates)."""
    modes = exp.modes
    if budget is not None and modes is None and not exp.targets:
        modes = (budget_lib.DEFAULT_MODE,)
    if modes is None and not exp.targets:
        selecting = exp.min_cos is not None
        modes = modes_lib.selection_candidates() if selecting else ("fp32",)
    return tuple(modes_lib.resolve_plans(modes, exp.targets))


def memory_phases(job: options_lib.ExportJob) -> dict[str, int]:
    """{phase: bytes} the export of `job` needs at least
    (`memory.phase_bytes`): in one process, or with the Keras model freed
    and float conversions in child processes where its plans allow it
    and that needs less. Given that much (`memory.MAX_MEMORY_ENV`), the
    export takes that structure itself: what a scheduler reserves for
    it. Builds the model, converts nothing.
    """
    exp = job.export
    size = options_lib.parse_image_size(_image_size(job.model))
    budget = None if exp.budget is None else budget_lib.parse_budget(exp.budget)
    plans = _resolve_plans(exp, budget)
    backbone, _, _ = _load_job_model(job, size)
    converters = sorted({p.converter for p in plans})
    alone = memory.phase_bytes(backbone, size, False, converters)
    if not _isolable(backbone, plans, exp):
        return alone
    split = memory.phase_bytes(backbone, size, True, converters)
    return min(alone, split, key=lambda phases: max(phases.values()))


def _isolable(backbone, plans, exp):
    """Whether the export can free the Keras model after tracing and
    convert in child processes: one of our backbones (not a segmenter,
    whose class map is checked against the model), float conversions
    only (calibration and float-layer matching run in this process)."""
    from edge_backbones.models.backbone import Backbone

    return (
        isinstance(backbone, Backbone)
        and not segmentation.is_segmenter(backbone)
        and all(p.converter in isolated.FLOAT_CONVERTERS for p in plans)
        and not (exp.float_layers or exp.layer_report or exp.socs)
    )


# a .tflite flatbuffer addresses at most 2 GiB (32-bit offsets)
_FLATBUFFER_LIMIT = 2**31
# weight bytes per parameter in the converter's float kinds
_WEIGHT_BYTES = {"fp32": 4, "fp16": 2, "dynamic": 1}


def _check_flatbuffer_size(backbone, plans, name):
    """InputError, before any work, for an artifact whose weights alone
    exceed what one .tflite flatbuffer (and its embedded metadata) holds."""
    params = backbone.count_params()
    for plan in plans:
        weight_bytes = _WEIGHT_BYTES.get(plan.converter, 1) * params
        if weight_bytes >= _FLATBUFFER_LIMIT:
            raise InputError(
                f"{name}'s {plan.mode} artifact would hold "
                f"{weight_bytes / 2**30:.2f} GiB of weights ({params / 1e6:.0f}"
                " M parameters), over the 2 GiB a .tflite flatbuffer (with "
                "the metadata embedded in it) can hold. Export fp16 or cpu "
                "(half the bytes) or dynamic / int8 instead."
            )


@dataclasses.dataclass(frozen=True)
class _ModelFacts:
    """What an isolated export still reads of the model once its Keras
    weights are freed (the metadata block is written before)."""

    name: str
    feature_info: tuple


def _without_keras(plan):
    """`plan` with its Keras model replaced by `_ModelFacts`; the model's
    weights are freed when the caller drops the old plan."""
    facts = _ModelFacts(
        name=plan.backbone.name, feature_info=tuple(plan.backbone.feature_info)
    )
    return dataclasses.replace(plan, backbone=facts)


def _image_size(model_options):
    """The size asked for, else the preset's natural one (`mit_b0` 224,
    SAM 1024; see `Backbone.natural_input_size`), else 512."""
    if model_options.image_size is not None:
        return model_options.image_size
    from edge_backbones.models.backbone import Backbone
    from edge_backbones.models.segformer import segmenter_presets

    if isinstance(model_options.model, str) and (
        model_options.model in segmenter_presets
    ):
        return segmentation.natural_input_size(model_options.model)
    if isinstance(model_options.model, str):
        sam = _sam_encoder_preset(model_options.model)
        if sam is not None:
            return Backbone.natural_input_size(sam)
    return Backbone.natural_input_size(model_options.model)


def _out_features(out_features, backbone, name):
    """The levels to export (None: all), each one the backbone has."""
    if out_features is None:
        return None
    out_features = split_commas(out_features)
    levels = [info.name for info in backbone.feature_info]
    unknown = [n for n in out_features if n not in levels]
    if unknown or not out_features:
        raise InputError(
            f"out_features={out_features} names unknown level(s) "
            f"{unknown}; {name} has {levels} (e.g. "
            f"--out-features {','.join(levels[-2:])})."
        )
    return out_features


def _calibration(job, plans):
    """The CalibrationSet (None without photos); CalibrationError if a
    plan needs photos and none were given."""
    options = job.calibration
    calib = calibration_lib.calibration_set(
        options.calibration,
        options.seed,
        options.holdout_fraction,
        options.max_images,
    )
    if calib is None and any(p.needs_calibration for p in plans):
        raise CalibrationError(
            f"{[p.mode for p in plans if p.needs_calibration]} quantize "
            "activations and need calibration photos; got calibration=None."
            " Pass calibration='calibration/' (--calibration DIR)."
        )
    return calib


@dataclasses.dataclass(frozen=True)
class Workbench:
    """What every artifact of one export converts from and verifies on."""

    work: str  # the locked work folder in `out`: artifacts are staged here
    scratch: str  # SavedModels and candidates (`work`, or in `work_dir`)
    reference: dict  # level -> the Keras float outputs on the held-out set
    converter: Converter  # the plain graph
    # full int8: softmax flag -> the graph traced in integer form
    integer_converters: dict
    float_nodes: tuple  # nodes `float_layers` matched in the float graph
    base_metadata: dict  # the model's block, shared by every artifact
    meter: memory.PhaseMeter  # peak resident memory per phase
    # a segmenter's graph without its class map, for the plans whose
    # graph cannot hold it (`segmentation.host_classes`)
    logits_converter: Converter | None = None
    # the same in integer form (full int8 with integer I/O)
    integer_logits_converters: dict = dataclasses.field(default_factory=dict)
    # mode -> (peak resident bytes of its conversion's child process, this
    # process's resident bytes meanwhile)
    child_peaks: dict = dataclasses.field(default_factory=dict)
    # a SAM export's float image embeddings (1, h, w, C) of the calibration
    # photos, what its decoders calibrate on: arrays, not the serving graph,
    # which would keep the Keras model alive after `_without_keras`
    sam_calibration_embeddings: tuple = ()

    def converter_for(self, plan: modes_lib.Plan) -> Converter:
        """The converter `plan` traces from (integer graphs for full int8;
        a segmenter's logits-only graph where `segmentation.host_classes`)."""
        host = (
            segmentation.host_classes(plan)
            and self.logits_converter is not None
        )
        if plan.integer_layer_norm:
            if host:
                return self.integer_logits_converters[plan.integer_softmax]
            return self.integer_converters[plan.integer_softmax]
        if host and self.logits_converter is not None:
            return self.logits_converter
        return self.converter


def _prepare(plan, work, scratch, meter):
    """Serving graph, float reference and converters (a Workbench)."""
    from edge_backbones.exporter.graph import write_saved_model

    with meter.phase("reference"):
        serving = graph_lib.serving_graph(
            plan.backbone, plan.size, plan.out_features, plan.preprocessing
        )
        reference = graph_lib.reference_outputs(serving, plan.holdout)
    if plan.labels is not None:
        scores = _label_scores(plan, reference)
        _log(f"float model: {segmentation.format_labels(scores)}")
    with meter.phase("trace"):
        saved = write_saved_model(serving, os.path.join(scratch, "saved_model"))
    with meter.phase("calibration images"):
        arrays = _calibration_arrays(plan)
        dataset = _dataset(plan, arrays)
    sam_embeddings = ()
    if _is_sam(plan) and arrays is not None:
        with meter.phase("sam calibration embeddings"):
            (level,) = reference
            sam_embeddings = tuple(
                e[None]
                for e in graph_lib.reference_outputs(serving, arrays)[level]
            )
    allow_flex = plan.job.export.allow_flex
    converter = Converter(saved, dataset, allow_flex=allow_flex, log=_log)
    # one integer-form graph per softmax form the plans ask for
    softmax_forms = {
        p.integer_softmax for p in plan.plans if p.integer_layer_norm
    }
    traced = meter.phase("trace integer") if softmax_forms else None
    with traced or contextlib.nullcontext():
        integer_converters = {
            softmax: _integer_converter(
                serving, scratch, dataset, allow_flex, softmax
            )
            for softmax in softmax_forms
        }
    if plan.job.export.layer_report:  # the graph full int8 converts
        _report_layers(
            next(iter(integer_converters.values()), converter),
            plan.holdout,
            plan.job.export.out,
            plan.stem(),
        )
    float_nodes = ()
    if plan.float_layers:
        from edge_backbones.exporter.quant_debug import match_nodes

        float_nodes = tuple(match_nodes(converter.fp32(), plan.float_layers))
    logits_converter, integer_logits_converters = None, {}
    host = [p for p in plan.plans if segmentation.host_classes(p)]
    if segmentation.is_segmenter(plan.backbone) and host:
        os.makedirs(os.path.join(scratch, "logits"), exist_ok=True)
        logits_only = graph_lib.serving_graph(
            plan.backbone, plan.size, [segmentation.LOGITS], plan.preprocessing
        )
        logits_converter = Converter(
            write_saved_model(
                logits_only, os.path.join(scratch, "saved_model_logits")
            ),
            dataset,
            allow_flex=allow_flex,
            log=_log,
        )
        integer_logits_converters = {
            p.integer_softmax: _integer_converter(
                logits_only,
                os.path.join(scratch, "logits"),
                dataset,
                allow_flex,
                p.integer_softmax,
            )
            for p in host
            if p.integer_layer_norm
        }
    if plan.isolated:
        alone = memory.phase_bytes(
            plan.backbone,
            plan.size,
            converters=sorted({p.converter for p in plan.plans}),
        )
        largest = max(alone, key=alone.__getitem__)
        _log(
            "memory: converting in child processes; the Keras model is "
            "freed first (in one process the export needs about "
            f"{alone[largest] / 2**30:.1f} GiB, in its {largest} phase)"
        )
    return Workbench(
        work=work,
        scratch=scratch,
        reference=reference,
        converter=converter,
        integer_converters=integer_converters,
        float_nodes=float_nodes,
        base_metadata=_model_metadata(plan),
        meter=meter,
        logits_converter=logits_converter,
        integer_logits_converters=integer_logits_converters,
        sam_calibration_embeddings=sam_embeddings,
    )


def _calibration_arrays(plan):
    """The calibration photos as model inputs, or None if nothing
    calibrates (decoded once: the dataset and SAM's decoders share them)."""
    needs = any(p.needs_calibration for p in plan.plans)
    report = plan.job.export.layer_report
    if plan.calibration is None or not (needs or report):
        return None
    return calibration_lib.preprocessed(
        plan.calibration, "calibration", plan.preprocessing, plan.size
    )


def _dataset(plan, arrays):
    """The representative dataset of `arrays`, or None without them."""
    if arrays is None:
        return None
    _log(f"calibration: {len(arrays)} images")
    return calibration_lib.representative_dataset(
        arrays, plan.preprocessing, _log
    )


def _model_metadata(plan):
    backbone = plan.backbone
    return {
        "schema": tflite_metadata.SCHEMA,
        "model": {
            "name": plan.name,
            "class_name": type(backbone).__name__,
            "config": _json_safe(backbone.get_config()),
            "weights": plan.weights,
            "params": int(backbone.count_params()),
        },
        **(
            {"task": segmentation.task_metadata(backbone)}
            if segmentation.is_segmenter(backbone)
            else {}
        ),
        **(
            {
                "task": sam_export.encoder_task(
                    plan.job.model.model, plan.size, backbone
                )
            }
            if _is_sam(plan)
            else {}
        ),
    }


def _is_sam(plan):
    """Whether the export is a Segment Anything checkpoint's pair (not
    with `min_cos`, which keeps one artifact, nor `task="backbone"`)."""
    return (
        not plan.selecting
        and plan.job.model.task != segmentation.BACKBONE
        and sam_export.is_sam_checkpoint(plan.job.model.model)
    )


def _export_sam_decoders(plan, workbench, failures):
    """ArtifactRecords of SAM's mask decoder in the export's modes,
    calibrated and verified on the embeddings of the same photos (the
    held-out ones are the encoder's float reference); the decoders
    outside their gates join `failures`."""
    with workbench.meter.phase("sam decoder"):
        sam = sam_export.load_sam(
            plan.job.model.model,
            plan.size,
            plan.job.model.random_weights,
            plan.job.model.config,
        )
        (level,) = workbench.reference
        holdout = [e[None] for e in workbench.reference[level]]
        written, rejected = sam_export.export_decoders(
            plan.job.model.model,
            sam,
            [p.mode for p in plan.plans],
            lambda mode: plan.stem(f"{sam_export.DECODER}_{mode}"),
            plan.job.export.out,
            workbench.scratch,
            list(workbench.sam_calibration_embeddings),
            holdout,
            {**workbench.base_metadata["model"], "class_name": "SAMBackbone"},
            log=_log,
        )
    failures.extend(rejected)
    records = [
        ArtifactRecord(
            **w,
            fidelity={
                name: figures
                for name, figures in w["metadata"]["fidelity"].items()
                if isinstance(figures, dict)
            },
        )
        for w in written
    ]
    for record in records:
        _log(record.summary())
    return records


def _export_all(plan, workbench):
    """([ArtifactRecord], [(mode, error)]): every plan converted, verified
    and written (into the work folder while selecting)."""
    records, failures = [], []
    for mode_plan in plan.plans:
        try:
            record = _export_one(plan, workbench, mode_plan)
        except ExportError as exc:  # FidelityError is one
            if not plan.selecting and not isinstance(exc, FidelityError):
                raise
            _log_rejection(plan, mode_plan, exc)
            failures.append((mode_plan.mode, exc))
            continue
        records.append(record)
        _log(record.summary())
    return records, failures


def _log_rejection(plan, mode_plan, exc):
    # choosing: a candidate whose graph is refused (or that fails to
    # convert) loses, and the others still compete
    if plan.selecting and getattr(exc, "fidelity", None):
        name, worst = fidelity_lib.worst(exc.fidelity)
        _log(
            f"{mode_plan.mode:<8} rejected: cosine {worst['cosine']:.4f} "
            f"({name}) < {plan.job.export.min_cos}"
        )
    elif plan.selecting:
        _log(f"{mode_plan.mode:<8} rejected: {exc}")
    else:
        _log(f"{mode_plan.mode:<8} FAILED: {exc}")


def _export_one(plan, workbench, mode_plan):
    """convert -> verify -> write one artifact; its ArtifactRecord."""
    started = time.perf_counter()
    exp = plan.job.export
    gate = exp.min_cos if plan.selecting else plan.gates[mode_plan.mode]
    folder = workbench.work if plan.selecting else exp.out
    final = os.path.join(folder, plan.stem(mode_plan.mode) + ".tflite")
    # an int8 conversion calibrates inside the converter
    with workbench.meter.phase(f"convert {mode_plan.mode}"):
        content, float_layers = _convert(plan, workbench, mode_plan)
    if mode_plan.mode in workbench.child_peaks:
        workbench.meter.add_child(
            f"convert {mode_plan.mode}",
            *workbench.child_peaks.pop(mode_plan.mode),
        )
    graph = _check_graph(plan, mode_plan, content)
    with workbench.meter.phase(f"verify {mode_plan.mode}"):
        verified = _verify(plan, workbench, mode_plan, content, gate, final)
    verified["graph"] = {**graph, **verified["graph"]}
    search_log = float_layers.pop("budget_log", None)
    verified["scheme"] = {**mode_plan.as_metadata(), **float_layers}
    if "per_layer" in float_layers:  # the search replaced the hand-picks
        verified["scheme"]["float_layer_names"] = []
    metadata = _artifact_metadata(plan, workbench, mode_plan, verified, gate)
    size_bytes = tflite_metadata.write_artifact(
        final, content, metadata, workbench.work
    )
    if search_log is not None:
        from edge_backbones.exporter.quant_debug import write_node_values

        stem = os.path.join(folder, plan.stem(mode_plan.mode))
        write_file_atomic(
            stem + ".budget.json", dumps_json(search_log, indent=1) + "\n"
        )
        # per-op error and per-op time, painted on the graph
        for suffix, (name, values) in budget_lib.overlays(search_log).items():
            write_node_values(
                name, values, f"{stem}.{suffix}.model_explorer.json"
            )
    return ArtifactRecord(
        mode=mode_plan.mode,
        path=final,
        size_bytes=size_bytes,
        seconds=time.perf_counter() - started,
        fidelity=verified["fidelity"],
        metadata=metadata,
    )


def _convert(plan, workbench, mode_plan):
    """(.tflite bytes, the metadata's record of the nodes kept float).

    That record: `float_layers` (what --float-layers asked for and the
    graph nodes it matched), `float_layer_type_nodes` and
    `float_layer_name_nodes` (the nodes of the scheme's float layer types
    and layer names); all apply to int8 schemes only.
    """
    _log(f"{mode_plan.mode}: converting ({mode_plan.description})")
    workspace_lib.crash_point("converting")
    converter = workbench.converter_for(mode_plan)
    kind = mode_plan.converter
    applied = {"matched_nodes": [], "type_nodes": [], "name_nodes": []}
    if plan.isolated:
        alongside = memory.resident_bytes() or 0
        content, peak = isolated.convert(
            converter.saved_model_dir,
            kind,
            os.path.join(workbench.scratch, f"child_{mode_plan.mode}.tflite"),
            float_weight_ops=tuple(mode_plan.float_weight_ops or ()),
            allow_flex=converter.allow_flex,
        )
        workbench.child_peaks[mode_plan.mode] = (peak, alongside)
    elif kind in ("fp32", "fp16"):
        content = getattr(converter, kind)()
    elif kind == "int16x8":
        content = converter.int16x8(
            integer_io=mode_plan.integer_io,
            grouped_depthwise=mode_plan.grouped_depthwise,
        )
    elif kind == "dynamic":
        content = converter.dynamic(mode_plan.float_weight_ops)
    else:
        from edge_backbones.exporter.quant_debug import scheme_float_nodes

        applied["matched_nodes"] = list(workbench.float_nodes)
        applied["type_nodes"], applied["name_nodes"] = scheme_float_nodes(
            converter.fp32(), plan.backbone, mode_plan
        )
        if segmentation.is_segmenter(plan.backbone):
            applied["name_nodes"] += segmentation.float_nodes(
                converter.fp32(), plan.backbone, mode_plan.mode
            )
        if plan.budget is not None:  # the search picks the float layers
            applied["name_nodes"] = []
        float_nodes = list(
            dict.fromkeys(
                applied["matched_nodes"]
                + applied["type_nodes"]
                + applied["name_nodes"]
            )
        )

        def quantize(extra=()):
            return converter.int8(
                io_dtype=plan.job.export.io_dtype
                if mode_plan.integer_io
                else "float32",
                float_ops=mode_plan.float_ops,
                float_nodes=list(dict.fromkeys(float_nodes + list(extra))),
                ranges=mode_plan.ranges,
            )

        if plan.budget is None:
            content = quantize()
        else:
            content, searched = _budget_search(
                plan, workbench, converter, quantize, float_nodes
            )
            applied.update(searched)
    return content, {
        "float_layers": {
            "requested": list(plan.float_layers),
            "matched_nodes": applied["matched_nodes"],
        },
        "float_layer_type_nodes": list(applied["type_nodes"]),
        "float_layer_name_nodes": list(applied["name_nodes"]),
        **{k: applied[k] for k in ("per_layer", "budget_log") if k in applied},
    }


def _budget_search(plan, workbench, converter, quantize, float_nodes):
    """(.tflite bytes, {per_layer, budget_log}): `budget.search` over the
    layers with weights not already float, scored on the calibration
    photos against the fp32 graph and re-verified on the held-out ones."""
    from edge_backbones.exporter.quant_debug import weighted_layer_nodes
    from edge_backbones.runtime.edge_model import EdgeModel

    fp32 = converter.fp32()
    already = set(float_nodes)
    units = [
        budget_lib.LayerUnit(path, tuple(n for n in nodes if n not in already))
        for path, nodes in weighted_layer_nodes(fp32, plan.backbone).items()
        if any(n not in already for n in nodes)
    ]
    samples = converter.samples()[: budget_lib.SEARCH_PHOTOS]
    threads = plan.job.export.num_threads
    strip = (
        segmentation.without_classes
        if segmentation.is_segmenter(plan.backbone)
        else dict
    )

    def outputs(content, inputs):
        path = os.path.join(workbench.scratch, "budget_candidate.tflite")
        with open(path, "wb") as f:
            f.write(content)
        model = EdgeModel(path, num_threads=threads)
        result = strip(model.run_batch(inputs))
        del model
        os.unlink(path)
        return result

    reference = outputs(fp32, samples)
    holdout_reference = strip(workbench.reference)
    result = budget_lib.search(
        units,
        quantize,
        fp32,
        lambda c: budget_lib.worst_cosine(reference, outputs(c, samples)),
        lambda c: budget_lib.worst_cosine(
            holdout_reference, outputs(c, plan.holdout)
        ),
        plan.budget,
        plan.gates[plan.plans[0].mode],
        threads,
        plan.job.export.bench_runs,
        _log,
    )
    per_layer = {
        "budget": plan.budget.as_dict(),
        "choices": result.choices,
        "float_layers": list(result.float_layers),
        "float_nodes": list(result.float_nodes),
        "search_log": plan.stem(plan.plans[0].mode) + ".budget.json",
    }
    return result.content, {"per_layer": per_layer, "budget_log": result.log}


def _check_graph(plan, mode_plan, content):
    """The metadata's graph block; ExportError if the graph breaks the
    plan's device checks."""
    graph = tflite_metadata.graph_summary(content)
    if hasattr(plan.backbone, "graph_notes"):  # a foreign_model.ForeignModel
        graph["foreign_model"] = plan.backbone.graph_notes(
            mode_plan, content, _log
        )
    compatible, warnings = gpu_compatibility(content)
    graph["gpu_compatible"] = compatible
    verify.check_graph(mode_plan, content, compatible, warnings)
    return graph


def _verify(plan, workbench, mode_plan, content, gate, final):
    """Runs the candidate on the held-out images; FidelityError below
    `gate`. Returns its fidelity, I/O specs, `verified_on` and GPU run."""
    candidate = os.path.join(
        workbench.scratch, f"candidate_{mode_plan.mode}.tflite"
    )
    with open(candidate, "wb") as f:
        f.write(content)
    _log(f"{mode_plan.mode}: verifying on {len(plan.holdout)} held-out images")
    workspace_lib.crash_point("verifying")
    threads = plan.job.export.num_threads
    from edge_backbones.runtime.edge_model import EdgeModel

    runtime_model = EdgeModel(candidate, num_threads=threads)
    outputs = runtime_model.run_batch(plan.holdout)
    reference = workbench.reference
    what = os.path.basename(final)
    task = None
    if segmentation.is_segmenter(plan.backbone):
        # cosines of the logits; the class map is scored as masks
        mask_gate = (plan.job.export.mask_thresholds or {}).get(
            mode_plan.mode, mode_plan.min_mask_agreement
        )
        task = segmentation.verify_masks(
            plan.backbone,
            reference,
            outputs,
            (mode_plan.mode, mask_gate),
            what,
            plan.size,
        )
        if plan.labels is not None:
            task["verification"]["labels"] = _label_scores(plan, outputs)
        reference = segmentation.without_classes(reference)
        outputs = segmentation.without_classes(outputs)
    fidelity = fidelity_lib.compare(reference, outputs)
    verify.check(fidelity, gate, mode_plan.mode, what)
    if task is not None:
        task["verification"]["holdout"] = plan.holdout_source
        _log(f"{mode_plan.mode}: {segmentation.format_masks(task)}")
    graph = {}
    if mode_plan.require_gpu_compatible:
        _log(f"{mode_plan.mode}: checking on LiteRT's GPU accelerator")
        graph["gpu_run"] = gpu_check.run_on_gpu(
            candidate,
            plan.holdout,
            reference,
            gate,
            mode_plan.mode,
            what,
            threads,
        )
        _log(f"{mode_plan.mode}: GPU check: {graph['gpu_run']['status']}")
    input_meta, output_meta = _io_metadata(
        runtime_model, plan.backbone, plan.preprocessing
    )
    from edge_backbones.runtime.parity import verified_on

    on = verified_on(runtime_model)
    del runtime_model
    os.unlink(candidate)
    return {
        "fidelity": fidelity,
        "input": input_meta,
        "outputs": output_meta,
        "verified_on": on,
        "graph": graph,
        "task": task,
    }


def _label_scores(plan, outputs):
    """A segmenter's true mIoU and pixel accuracy on the labelled photos."""
    job = plan.job.calibration
    return segmentation.label_scores(
        outputs[segmentation.LOGITS],
        plan.labels,
        plan.backbone.num_classes,
        job.reduce_labels,
        os.path.abspath(os.fspath(job.labels)),
    )


def _artifact_metadata(plan, workbench, mode_plan, verified, gate):
    return {
        **workbench.base_metadata,
        "mode": mode_plan.mode,
        "recipe": mode_plan.target,
        **({"recipe_reason": mode_plan.reason} if mode_plan.reason else {}),
        # the full resolved scheme: numerics, settings, float layers
        "scheme": verified["scheme"],
        "input": verified["input"],
        "outputs": verified["outputs"],
        "fidelity": {
            **verified["fidelity"],
            "min_cosine": gate,
            "holdout": plan.holdout_source,
        },
        "verified_on": verified["verified_on"],
        "graph": verified["graph"],
        **({"task": verified["task"]} if verified["task"] else {}),
        "versions": tflite_metadata.versions(),
        "created": tflite_metadata.utc_now(),
    }


def _npu_socs(socs, modes, min_cos):
    if not socs:
        return []
    if min_cos is not None:
        raise InputError(
            "socs (--soc) compiles the npu artifact; it does not combine "
            "with min_cos (--min-cos), which keeps one artifact."
        )
    from edge_backbones.exporter.npu_gate import check_socs

    return check_socs(socs, modes)


def _compile_npu(plan, workbench, records):
    """ArtifactRecords of the npu artifact compiled for each SoC."""
    if not plan.socs:
        return []
    from edge_backbones.exporter.npu_gate import compile_verified

    compiled = []
    # a SAM decoder takes prompts, not photos: `edge-backbones compile` and
    # its prompt verification (tests/npu/test_sam_stage.py) are its way
    sources = [
        r
        for r in records
        if r.mode in modes_lib.npu_targets()
        and (r.metadata or {}).get("task", {}).get("kind")
        != sam_export.DECODER_KIND
    ]
    for source in sources:
        started = time.perf_counter()
        for path, fidelity, metadata in compile_verified(
            source,
            plan.socs,
            plan.holdout,
            workbench.reference,
            plan.gates[source.mode],
            _log,
        ):
            compiled.append(
                ArtifactRecord(
                    mode=f"{source.mode}@{metadata['compiled']['soc']}",
                    path=path,
                    size_bytes=os.path.getsize(path),
                    seconds=time.perf_counter() - started,
                    fidelity=fidelity,
                    metadata=metadata,
                )
            )
    return compiled


def _report_layers(converter, holdout, out, stem):
    from edge_backbones.exporter import quant_debug

    if converter.representative_dataset is None:
        raise CalibrationError(
            "layer_report compares int8 with float layer by layer and needs "
            "calibration photos; pass calibration=... (--calibration DIR)."
        )
    _log(f"layer report: int8 vs float per layer on {len(holdout)} images")

    def debug_dataset():
        for x in holdout:
            yield [x[None]]

    rows = quant_debug.layer_report(converter, debug_dataset)
    path = quant_debug.write_layer_report(
        rows, os.path.join(out, stem + "_layers.csv")
    )
    overlay = quant_debug.write_node_data(
        rows, os.path.join(out, stem + "_layers.model_explorer.json")
    )
    _log(
        quant_debug.format_layer_report(rows)
        + f"\n(all rows: {path}; Model Explorer node data: {overlay})"
    )


def _integer_converter(serving, work, dataset, allow_flex, softmax):
    """A Converter of the graph traced in integer form.

    Full-int8 plans convert this second SavedModel: layer norms as
    L2_NORMALIZATION (`models.layers.integer_layer_norm`) and, with
    `softmax`, softmax as exp * rsqrt(sum)^2 (`integer_softmax`); the
    float and mixed plans keep the plain graph, which XNNPACK runs whole.
    """
    from edge_backbones.exporter.graph import write_saved_model
    from edge_backbones.models.layers import (
        integer_layer_norm,
        integer_softmax,
    )

    folder = "saved_model_integer" + ("_softmax" if softmax else "")
    with (
        integer_layer_norm(),
        integer_softmax() if softmax else contextlib.nullcontext(),
    ):
        saved = write_saved_model(serving, os.path.join(work, folder))
    return Converter(saved, dataset, allow_flex=allow_flex, log=_log)


def _select(plan, workbench, records, failures):
    """Benchmarks the passing candidates; keeps the fastest one in `out`."""
    from edge_backbones.runtime.bench import benchmark

    threads, runs = plan.job.export.num_threads, plan.job.export.bench_runs
    min_cos = plan.job.export.min_cos
    for record in records:
        _log(f"timing {record.mode} ({runs} runs, {threads} threads)")
        result = benchmark(record.path, num_threads=threads, runs=runs)
        record.latency_ms = result["latency_ms"]["median"]
    best = min(records, key=lambda r: r.latency_ms, default=None)
    rows, reasons = _selection_rows(records, failures, best, min_cos)
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        _log("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    if best is None:
        # per-mode thresholds do not apply here: min_cos is every gate
        raise FidelityError(
            f"No candidate reached cosine {min_cos}: "
            + " | ".join(reasons)
            + ". Nothing was written. Lower --min-cos (min_cos), add "
            "candidates (--modes / --target), or keep the lossy layers in "
            "float (--float-layers, see --layer-report)."
        )
    final = os.path.join(plan.job.export.out, os.path.basename(best.path))
    # the pair moves together, as write_artifact's does
    sidecar = tflite_metadata.sidecar_path
    workspace_lib.commit(
        workbench.work,
        [(sidecar(best.path), sidecar(final)), (best.path, final)],
    )
    best.path = final
    _log(best.summary() + f"  {best.latency_ms:.1f} ms")
    return [best]


def _selection_rows(records, failures, best, min_cos):
    """The table `--min-cos` prints (header first), and why each failed
    candidate lost."""
    rows = [("mode", "cosine", "latency ms", "size MB", "verdict")]
    for record in sorted(records, key=lambda r: r.latency_ms):
        verdict = (
            "KEPT: fastest" if record is best else f"slower than {best.mode}"
        )
        rows.append(
            (
                record.mode,
                f"{fidelity_lib.worst(record.fidelity)[1]['cosine']:.4f}",
                f"{record.latency_ms:.1f}",
                f"{megabytes(record.size_bytes):.2f}",
                verdict,
            )
        )
    reasons = []
    for mode, exc in failures:
        if getattr(exc, "fidelity", None):
            level, figures = fidelity_lib.worst(exc.fidelity)
            cosine, verdict = figures["cosine"], f"rejected: below {min_cos}"
            reasons.append(f"{mode}: cosine {cosine:.4f} ({level})")
        else:
            reason = " ".join(str(exc).split())[:60]
            cosine, verdict = float("nan"), f"rejected: {reason}"
            reasons.append(f"{mode}: {exc}")
        rows.append((mode, f"{cosine:.4f}", "-", "-", verdict))
    return rows, reasons
