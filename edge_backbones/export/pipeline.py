"""`export(...)`: one call from a backbone to verified .tflite artifacts.

For each requested mode or target recipe: convert (SavedModel ->
TFLiteConverter, builtins only), run the artifact with the runtime's
`EdgeModel` on held-out photos, compare every level with the Keras float
model, and only if it passes its fidelity threshold write it (atomically)
with our metadata embedded and as a sidecar JSON. Progress goes to stderr;
each artifact ends with one line: mode, path, size, time, fidelity.
"""

import contextlib
import dataclasses
import numbers
import os
import sys
import time

import numpy as np

from edge_backbones.errors import (
    CalibrationError,
    ExportError,
    FidelityError,
    InputError,
    WeightsNotFoundError,
    require,
)
from edge_backbones.export import (
    gpu_check,
    memory,
    options,
    tflite_metadata,
    verify,
)
from edge_backbones.export import recipes as recipes_lib
from edge_backbones.export import workspace as workspace_lib
from edge_backbones.export.convert import Converter, gpu_compatibility
from edge_backbones.text import megabytes, split_commas

__all__ = ["ArtifactRecord", "export", "parse_image_size", "load_backbone"]

# held-out images used to verify when the caller gives no number
DEFAULT_HOLDOUT_FRACTION = 0.25
DEFAULT_MAX_IMAGES = 32
# what `min_cos` chooses among when no modes or targets are given
SELECTION_CANDIDATES = ("fp32", "fp16", "int8", "int8_mixed", "cpu")


@dataclasses.dataclass
class ArtifactRecord:
    """One exported, verified artifact."""

    mode: str
    path: str | None
    size_bytes: int
    seconds: float
    fidelity: dict | None
    metadata: dict
    latency_ms: float | None = None

    def summary(self):
        """The one line printed when the artifact is done."""
        size = f"{megabytes(self.size_bytes):.2f} MB"
        figures = (
            verify.format_fidelity(self.fidelity)
            if self.fidelity
            else "not verified"
        )
        return (
            f"{self.mode:<8} {self.path}  {size}  {self.seconds:.1f} s  "
            f"{figures}"
        )


def _log(line):
    print(line, file=sys.stderr, flush=True)


def parse_image_size(value):
    """512, "512", "384x640", (384, 640) -> (height, width)."""
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
    elif isinstance(value, bool):
        parts = []
    elif isinstance(value, numbers.Integral):
        parts = [value, value]
    else:
        try:
            parts = list(value)
        except TypeError:  # 512.0, None: not a size
            parts = []
    if len(parts) == 1:
        parts = parts * 2
    try:
        height, width = (int(p) for p in parts)
    except (TypeError, ValueError):
        height = width = -1
    if len(parts) != 2 or height <= 0 or width <= 0:
        raise InputError(
            f"image_size={value!r} is not a size; give 512 (square), "
            "'384x640' (height x width) or (384, 640)."
        )
    return height, width


def _check_options(thresholds, io_dtype):
    """InputError for a threshold of no mode or an I/O type of no plan."""
    from edge_backbones.export.convert import INT8_IO_DTYPES

    unknown = sorted(set(thresholds or {}) - set(verify.DEFAULT_MIN_COSINE))
    if unknown:
        raise InputError(
            f"thresholds name no mode or target: {unknown}; use "
            f"{sorted(verify.DEFAULT_MIN_COSINE)} (e.g. --threshold "
            "int8=0.98)."
        )
    if io_dtype not in INT8_IO_DTYPES:
        raise InputError(
            f"io_dtype={io_dtype!r} is not an integer I/O type; int8_io and "
            f"npu take {list(INT8_IO_DTYPES)} (--io-dtype)."
        )


def _check_destinations(out, stems):
    """InputError, before any work, if an artifact's place is taken."""
    for stem in stems:
        for suffix in (".tflite", ".json"):
            workspace_lib.check_destination(os.path.join(out, stem + suffix))


def load_backbone(
    model, random_weights=False, image_size=None, config=None, seed=0
):
    """(backbone, model name, weights source) from a name, folder or object.

    A preset name loads its weights from this disk only; without them it
    fails with the WeightsNotFoundError message unless `random_weights` is
    set, so a random-weight artifact is never shipped by accident. Names
    and folders are built at `image_size` (families whose weights depend on
    the size, like ViTDet's position tables, adapt them when loading).
    `config` overrides architecture arguments of a preset. Random weights
    are drawn from Keras' global generator seeded with `seed`, so the same
    command exports the same model (and the same fidelity figures).
    """
    from edge_backbones.export import foreign_model
    from edge_backbones.models.backbone import Backbone

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
        return foreign, foreign.name, foreign.weights
    kwargs = dict(config or {})
    if random_weights:
        import keras

        keras.utils.set_random_seed(seed)
    if image_size is not None:
        kwargs["image_shape"] = (*image_size, 3)
    model = os.fspath(model)
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


def _preprocessing(backbone, pixels_in_graph):
    spec = dict(backbone.preprocessing)
    spec["pixels_in_graph"] = bool(pixels_in_graph)
    return spec


def _serving(backbone, size, out_features, preprocessing):
    """The serving model; with pixels in graph it normalizes raw pixels."""
    keras = require("keras", "export")
    from edge_backbones.export.graph import INPUT_NAME, serving_model

    model = serving_model(backbone, size, out_features)
    if not preprocessing["pixels_in_graph"]:
        return model
    std = np.asarray(preprocessing["std"], np.float32)
    mean = np.asarray(preprocessing["mean"], np.float32)
    # (p * scale - mean) / std as one per-channel multiply-add
    normalize = keras.layers.Rescaling(
        scale=float(preprocessing["scale"]) / std,
        offset=-mean / std,
        name="normalize",
    )
    pixels = keras.Input((*size, 3), batch_size=1, name=INPUT_NAME)
    return keras.Model(pixels, model(normalize(pixels)), name="serving")


def _calibration_set(calibration, seed, holdout_fraction, max_images):
    if calibration is None:
        return None
    if hasattr(calibration, "arrays"):
        return calibration
    from edge_backbones.export.calibration import load_calibration_set

    return load_calibration_set(
        calibration,
        seed=seed,
        holdout_fraction=holdout_fraction,
        max_images=max_images,
    )


def _representative_dataset(arrays, preprocessing, log=None):
    samples = [a.astype(np.float32) for a in arrays]
    if preprocessing["pixels_in_graph"] and samples:
        # one sample that spans 0..255 pins the input range, so a uint8
        # input tensor gets scale 1 / zero point 0: raw pixels, exactly
        extra = samples[0].copy()
        extra[0, 0], extra[0, 1] = 0.0, 255.0
        samples.append(extra)

    def generator():
        for index, sample in enumerate(samples, 1):
            if log is not None and (index % 8 == 0 or index == len(samples)):
                log(f"calibrating: image {index}/{len(samples)}")
            yield {"images": sample[None]}

    return generator


def _run_tflite(path, inputs, num_threads):
    from edge_backbones.runtime.edge_model import EdgeModel

    model = EdgeModel(path, num_threads=num_threads)
    outputs = [model(x) for x in inputs]
    names = list(outputs[0])
    return model, {n: np.concatenate([o[n] for o in outputs]) for n in names}


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
    model,
    image_size=None,
    modes=None,
    targets=(),
    calibration=None,
    out="artifacts",
    random_weights=False,
    thresholds=None,
    min_cos=None,
    float_layers=(),
    pixels_in_graph=False,
    io_dtype="int8",
    out_features=None,
    max_images=DEFAULT_MAX_IMAGES,
    holdout_fraction=DEFAULT_HOLDOUT_FRACTION,
    seed=0,
    allow_flex=False,
    num_threads=2,
    bench_runs=20,
    layer_report=False,
    name=None,
    config=None,
    socs=None,
):
    """Exports `model` in each of `modes` and `targets`; verified artifacts.

    Args:
        model: a preset name ("mit_b0"), a checkpoint folder, a Backbone,
            or a model of your own (see `foreign_model.ForeignModel`): any
            Keras 3 or tf-keras model, a .keras/.h5 file, a SavedModel.
        image_size: 512, "384x640" or (384, 640): the fixed input size.
            Default: the preset's natural size (`mit_b0` 224, SAM 1024; see
            `Backbone.natural_input_size`), 512 for anything else.
        modes: any of fp32, fp16, dynamic, int8, int8_io, int16x8 (a list
            or "fp32,int8"). Default: fp32, or with `min_cos` and no
            targets, `SELECTION_CANDIDATES`.
        targets: recipes per device: cpu (XNNPACK), npu, gpu (see
            `recipes.TARGETS`).
        calibration: a folder of photos (or a CalibrationSet); one part
            calibrates, a held-out part (`holdout_fraction`) verifies.
        out: the folder for `<name>_<H>x<W>_<mode>.tflite` + `.json`.
        random_weights: build the architecture with random weights (a preset
            whose weights are not on disk fails without it).
        thresholds: {mode: minimum cosine} over `verify.DEFAULT_MIN_COSINE`.
        min_cos: pick one artifact: every candidate (modes + targets) is
            verified against this cosine and timed on this device with the
            runtime benchmark; the fastest that passes is kept, the others
            are discarded, and a table says why.
        float_layers: node names (or parts of them) kept in float in every
            int8 artifact (see `quant_debug.layer_report`).
        pixels_in_graph: the model takes raw 0-255 RGB; normalization runs
            in the graph (uint8 input for int8_io / npu).
        io_dtype: int8 or uint8, the I/O type of int8_io / npu artifacts.
        seed: seeds the calibration split/sample and random weights.
        layer_report: before exporting, rank the layers by int8 error
            (QuantizationDebugger on the held-out images); the table goes to
            stderr and every row to `<out>/<name>_<H>x<W>_layers.csv`.
        name: the artifacts' name stem (default: the preset or folder name).
        config: architecture overrides for a preset (e.g. a smaller
            ViTDet); with trained weights they must still fit them.
        socs: with target npu, SoCs ("SM8650,SM8750", "intel-cpu") to
            compile the npu artifact for (`edge_backbones.npu`); each
            compiled file is gated on its simulated numerics vs float.

    Returns:
        A list of `ArtifactRecord`, one per written artifact. Raises
        FidelityError (after writing the others) if any artifact fell below
        its threshold; nothing is left where a failed artifact belongs.
    """
    options.check_export(locals())  # first: the arguments as given
    started = time.perf_counter()
    if image_size is None:
        from edge_backbones.models.backbone import Backbone

        image_size = Backbone.natural_input_size(model)
    size = parse_image_size(image_size)
    _check_options(thresholds, io_dtype)
    if modes is None and not targets:
        modes = SELECTION_CANDIDATES if min_cos is not None else ("fp32",)
    plans = recipes_lib.resolve_plans(modes, targets)
    npu_socs = _npu_socs(socs, [p.mode for p in plans], min_cos)
    memory.check_input(size)
    workspace_lib.prepare_out(out)  # a file or read-only `out` fails here
    backbone, model_name, weights = load_backbone(
        model, random_weights, size, config, seed
    )
    model_name = name or model_name
    memory.check_backbone(backbone, size)
    stems = [recipes_lib.artifact_stem(model_name, size, p.mode) for p in plans]
    _check_destinations(out, stems)
    # "a,b" as in the CLI, never a string iterated character by character
    float_layers = split_commas(float_layers)
    if out_features is not None:
        out_features = split_commas(out_features)
        levels = [info.name for info in backbone.feature_info]
        unknown = [n for n in out_features if n not in levels]
        if unknown or not out_features:
            raise InputError(
                f"out_features={out_features} names unknown level(s) "
                f"{unknown}; {model_name} has {levels} (e.g. "
                f"--out-features {','.join(levels[-2:])})."
            )
    gates = {**verify.DEFAULT_MIN_COSINE, **(thresholds or {})}
    preprocessing = _preprocessing(backbone, pixels_in_graph)
    needs_calibration = any(p.calibrated for p in plans)
    calib = _calibration_set(calibration, seed, holdout_fraction, max_images)
    if calib is None and needs_calibration:
        raise CalibrationError(
            f"{[p.mode for p in plans if p.calibrated]} quantize "
            "activations and need calibration photos; got calibration=None."
            " Pass calibration='calibration/' (--calibration DIR)."
        )
    holdout = _holdout(calib, preprocessing, size)
    holdout_source = (
        os.fspath(calib.source)
        if calib is not None and hasattr(calib, "source")
        else "synthetic: no calibration photos were given"
    )
    _log(
        f"export: {model_name} ({type(backbone).__name__}, weights: "
        f"{weights}) at {size[0]}x{size[1]}; {len(holdout)} held-out "
        f"images verify {[p.mode for p in plans]}"
    )
    # every file is staged in a locked `.export-<pid>-*` folder in `out`
    with workspace_lib.workspace(out) as work:
        serving = _serving(backbone, size, out_features, preprocessing)
        reference = _reference(serving, holdout)
        from edge_backbones.export.graph import write_saved_model

        saved = write_saved_model(serving, os.path.join(work, "saved_model"))
        dataset = None
        if needs_calibration or (layer_report and calib is not None):
            arrays = list(calib.arrays("calibration", preprocessing, size))
            _log(f"calibration: {len(arrays)} images")
            dataset = _representative_dataset(arrays, preprocessing, _log)
        converter = Converter(saved, dataset, allow_flex=allow_flex, log=_log)
        # one integer-form graph per softmax form the plans ask for
        integer_converters = {
            softmax: _integer_converter(
                serving, work, dataset, allow_flex, softmax
            )
            for softmax in {p.integer_softmax for p in plans}
            if any(p.integer_layer_norm for p in plans)
        }
        if layer_report:  # the graph the full-int8 artifacts convert
            _report_layers(
                next(iter(integer_converters.values()), converter),
                holdout,
                out,
                recipes_lib.artifact_stem(model_name, size),
            )
        float_nodes = ()
        if float_layers:
            from edge_backbones.export.quant_debug import match_nodes

            float_nodes = match_nodes(converter.fp32(), float_layers)
        base_metadata = {
            "schema": tflite_metadata.SCHEMA,
            "model": {
                "name": model_name,
                "class_name": type(backbone).__name__,
                "config": _json_safe(backbone.get_config()),
                "weights": weights,
                "params": int(backbone.count_params()),
            },
        }
        selecting = min_cos is not None
        records, failures = [], []
        for plan in plans:
            gate = min_cos if selecting else gates[plan.mode]
            stem = recipes_lib.artifact_stem(model_name, size, plan.mode)
            final = os.path.join(work if selecting else out, stem + ".tflite")
            plan_converter = (
                integer_converters[plan.integer_softmax]
                if plan.integer_layer_norm
                else converter
            )
            try:
                record = _export_one(
                    plan, plan_converter, holdout, reference, preprocessing,
                    backbone, base_metadata, gate, final, work, num_threads,
                    io_dtype, float_nodes, holdout_source,
                )  # fmt: skip
            except ExportError as exc:  # FidelityError is one
                if not selecting and not isinstance(exc, FidelityError):
                    raise
                # choosing: a candidate whose graph is refused (or that
                # fails to convert) loses, and the others still compete
                if selecting and getattr(exc, "fidelity", None):
                    name, worst = verify.worst(exc.fidelity)
                    _log(
                        f"{plan.mode:<8} rejected: cosine "
                        f"{worst['cosine']:.4f} ({name}) < {gate}"
                    )
                elif selecting:
                    _log(f"{plan.mode:<8} rejected: {exc}")
                else:
                    _log(f"{plan.mode:<8} FAILED: {exc}")
                failures.append((plan.mode, exc))
                continue
            records.append(record)
            _log(record.summary())
        if selecting:
            return _select(
                records, failures, min_cos, out, num_threads, bench_runs, work
            )
        records += _compile_npu(records, npu_socs, holdout, reference, gates)
        if failures:
            raise FidelityError(
                " | ".join(str(exc) for _, exc in failures)
                + f" ({len(records)} other artifact(s) were written: "
                f"{[r.path for r in records]})"
            )
        _log(f"export: done in {time.perf_counter() - started:.1f} s")
        return records


def _npu_socs(socs, modes, min_cos):
    if not socs:
        return []
    if min_cos is not None:
        raise InputError(
            "socs (--soc) compiles the npu artifact; it does not combine "
            "with min_cos (--min-cos), which keeps one artifact."
        )
    from edge_backbones.npu.export_gate import check_socs

    return check_socs(socs, modes)


def _compile_npu(records, socs, holdout, reference, gates):
    """ArtifactRecords of the npu artifact compiled for each of `socs`."""
    if not socs:
        return []
    from edge_backbones.npu.export_gate import compile_verified

    compiled = []
    for source in [r for r in records if r.mode == "npu"]:
        started = time.perf_counter()
        for path, fidelity, metadata in compile_verified(
            source, socs, holdout, reference, gates["npu"], _log
        ):
            compiled.append(
                ArtifactRecord(
                    mode=f"npu@{metadata['compiled']['soc']}",
                    path=path,
                    size_bytes=os.path.getsize(path),
                    seconds=time.perf_counter() - started,
                    fidelity=fidelity,
                    metadata=metadata,
                )
            )
    return compiled


def _report_layers(converter, holdout, out, stem):
    from edge_backbones.export import quant_debug

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


def _holdout(calib, preprocessing, size):
    if calib is not None:
        images = list(calib.arrays("holdout", preprocessing, size))
        if not images:
            raise CalibrationError(
                f"The held-out split of {getattr(calib, 'source', calib)!r}"
                " is empty, so nothing can verify the artifacts. Mark some "
                'photos "holdout" in its manifest.json (a manifest\'s split '
                "wins over holdout_fraction), or give a CalibrationSet "
                "holdout paths."
            )
        return [np.asarray(i, np.float32) for i in images]
    # no photos: float modes are still checked, on smooth random images in
    # the model's input space (recorded as such in the metadata)
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (4, 8, 8, 3)).astype(np.uint8)
    cv2 = require("cv2", "export")
    from edge_backbones.runtime.preprocess import preprocess

    return [
        np.asarray(
            preprocess(cv2.resize(s, size[::-1]), preprocessing, size),
            np.float32,
        )
        for s in small
    ]


def _integer_converter(serving, work, dataset, allow_flex, softmax):
    """A Converter of the graph traced in integer form.

    Full-int8 plans convert this second SavedModel: layer norms as
    L2_NORMALIZATION (`models.layers.integer_layer_norm`) and, with
    `softmax`, softmax as exp * rsqrt(sum)^2 (`integer_softmax`); the
    float and mixed plans keep the plain graph, which XNNPACK runs whole.
    """
    from edge_backbones.export.graph import write_saved_model
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


def _reference(serving, holdout):
    outputs = [serving(x[None], training=False) for x in holdout]
    return {
        name: np.concatenate([np.asarray(o[name]) for o in outputs])
        for name in outputs[0]
    }


def _convert(plan, converter, io_dtype, float_nodes, backbone):
    if plan.base == "fp32":
        return converter.fp32()
    if plan.base == "fp16":
        return converter.fp16()
    if plan.base == "dynamic":
        return converter.dynamic(plan.float_weight_ops)
    if plan.base == "int16x8":
        return converter.int16x8()
    if plan.float_layer_types:
        from edge_backbones.export.quant_debug import layer_type_nodes

        extra = layer_type_nodes(
            converter.fp32(), backbone, plan.float_layer_types
        )
        float_nodes = [
            *float_nodes,
            *(n for n in extra if n not in float_nodes),
        ]
    return converter.int8(
        io_dtype=io_dtype if plan.integer_io else "float32",
        float_ops=plan.float_ops,
        float_nodes=float_nodes,
        ranges=plan.ranges,
    )


def _export_one(
    plan, converter, holdout, reference, preprocessing, backbone,
    base_metadata, gate, final, work, num_threads, io_dtype, float_nodes,
    holdout_source,
):  # fmt: skip
    started = time.perf_counter()
    _log(f"{plan.mode}: converting ({plan.description})")
    workspace_lib.crash_point("converting")
    content = _convert(plan, converter, io_dtype, float_nodes, backbone)
    graph = tflite_metadata.graph_summary(content)
    if hasattr(backbone, "graph_notes"):  # a foreign_model.ForeignModel
        graph["foreign_model"] = backbone.graph_notes(plan, content, _log)
    compatible, warnings = gpu_compatibility(content)
    graph["gpu_compatible"] = compatible
    recipes_lib.check_graph(plan, content, compatible, warnings)
    candidate = os.path.join(work, f"candidate_{plan.mode}.tflite")
    with open(candidate, "wb") as f:
        f.write(content)
    _log(f"{plan.mode}: verifying on {len(holdout)} held-out images")
    workspace_lib.crash_point("verifying")
    runtime_model, outputs = _run_tflite(candidate, holdout, num_threads)
    fidelity = verify.compare(reference, outputs)
    verify.check(fidelity, gate, plan.mode, os.path.basename(final))
    if plan.require_gpu_compatible:
        _log(f"{plan.mode}: checking on LiteRT's GPU accelerator")
        graph["gpu_run"] = gpu_check.run_on_gpu(
            candidate, holdout, reference, gate, plan.mode,
            os.path.basename(final), num_threads,
        )  # fmt: skip
        _log(f"{plan.mode}: GPU check: {graph['gpu_run']['status']}")
    input_meta, output_meta = _io_metadata(
        runtime_model, backbone, preprocessing
    )
    from edge_backbones.runtime.parity import verified_on

    verified = verified_on(runtime_model)
    del runtime_model
    os.unlink(candidate)
    metadata = {
        **base_metadata,
        "mode": plan.mode,
        "recipe": plan.recipe,
        **({"recipe_reason": plan.reason} if plan.reason else {}),
        "input": input_meta,
        "outputs": output_meta,
        "fidelity": {
            **fidelity,
            "min_cosine": gate,
            "holdout": holdout_source,
        },
        "verified_on": verified,
        "graph": graph,
        "versions": tflite_metadata.versions(),
        "created": tflite_metadata.utc_now(),
    }
    size_bytes = tflite_metadata.write_artifact(final, content, metadata, work)
    return ArtifactRecord(
        mode=plan.mode,
        path=final,
        size_bytes=size_bytes,
        seconds=time.perf_counter() - started,
        fidelity=fidelity,
        metadata=metadata,
    )


def _select(records, failures, min_cos, out, num_threads, runs, work):
    """Benchmarks the passing candidates; keeps the fastest one in `out`."""
    from edge_backbones.runtime.bench import benchmark

    for record in records:
        _log(f"timing {record.mode} ({runs} runs, {num_threads} threads)")
        result = benchmark(record.path, num_threads=num_threads, runs=runs)
        record.latency_ms = result["latency_ms"]["median"]
    rows = [
        ("mode", "cosine", "latency ms", "size MB", "verdict"),
    ]
    best = min(records, key=lambda r: r.latency_ms, default=None)
    for record in sorted(records, key=lambda r: r.latency_ms):
        verdict = "KEPT: fastest" if record is best else (
            f"slower than {best.mode}"
        )  # fmt: skip
        rows.append(
            (
                record.mode,
                f"{verify.worst(record.fidelity)[1]['cosine']:.4f}",
                f"{record.latency_ms:.1f}",
                f"{megabytes(record.size_bytes):.2f}",
                verdict,
            )
        )
    reasons = []
    for mode, exc in failures:
        if getattr(exc, "fidelity", None):
            level, figures = verify.worst(exc.fidelity)
            cosine, verdict = figures["cosine"], f"rejected: below {min_cos}"
            reasons.append(f"{mode}: cosine {cosine:.4f} ({level})")
        else:
            reason = " ".join(str(exc).split())[:60]
            cosine, verdict = float("nan"), f"rejected: {reason}"
            reasons.append(f"{mode}: {exc}")
        rows.append((mode, f"{cosine:.4f}", "-", "-", verdict))
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
    final = os.path.join(out, os.path.basename(best.path))
    # the pair moves together, as write_artifact's does
    sidecar = tflite_metadata.sidecar_path
    workspace_lib.commit(
        work, [(sidecar(best.path), sidecar(final)), (best.path, final)]
    )
    best.path = final
    _log(best.summary() + f"  {best.latency_ms:.1f} ms")
    return [best]
