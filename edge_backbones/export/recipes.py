"""Recipes as data: what each mode and device target converts to, and TOML
files that pin a whole export (model, size, modes, calibration, gates).

Targets:
- `cpu` (XNNPACK), chosen by the exporting CPU's features (`cpu_plan`;
  the choice and its reason are in the artifact's metadata): where the CPU
  has int8 dot-product instructions (x86 VNNI / AMX, ARM dotprod / i8mm),
  dynamic-range int8; elsewhere float16 weights, because there dynamic
  int8 is slower than fp32 (issue 10: 1.17x at 1 thread, 1.25x at 2 on an
  AVX2-only EPYC) while fp16 weights run at fp32 speed (XNNPACK widens
  them once at load) in half the size. On this AVX-512 VNNI EPYC, MiT-B0
  @256, 5 interleaved rounds on a shared machine: dynamic int8 0.68x
  fp32 at 1 thread, 0.78x at 2; fp16 weights 0.98x / 0.94x.
  Dynamic-range int8: weights are int8 (per channel) and
  XNNPACK quantizes each FULLY_CONNECTED / CONV_2D input per row at run
  time (its QD8 kernels), so no activation range is fixed by calibration.
  DEPTHWISE_CONV_2D has no fast hybrid kernel in XNNPACK (it falls to the
  reference kernel and splits the graph), so its few weights stay float.
  Measured on MiT-B0 @512 (random weights, bundled photos): cosine >=
  0.9996 on every level, one XNNPACK partition, ~0.8x the fp32 latency and
  ~4x smaller; the static mixed recipe below is a little faster but lost
  0.001-0.002 cosine to per-tensor int8 activations spread evenly over
  every FC/conv (the layer report shows no single culprit).
- `int8_mixed` (mode): static int8 where XNNPACK has int8 kernels (conv,
  FC), float for the attention BATCH_MATMULs and SOFTMAX (no int8 XNNPACK
  kernel: the reference kernels made full int8 ~4x slower than fp32),
  GELU, the residual ADDs and every op of the layer norms (in int8 their
  squared deviations lose most of their bits); activation ranges clip the
  rarest 0.01% of values (MiT-B0 @512 0.99848 -> 0.99863).
- `npu` (Edge TPU / NNAPI): full int8, integer I/O, layer norms as
  L2_NORMALIZATION (see `models.layers.integer_layer_norm`: the plain
  form took a small ViTDet to cosine 0.50, this one to 0.989), and the
  graph must hold no float tensor, no DEQUANTIZE and no QUANTIZE from
  float: an accelerator hands any of those back to the CPU, splitting the
  graph. A
  QUANTIZE between integer tensors (uint8 input to int8, a change of
  scale) is an integer requantize and stays.
  Its softmax stays int8 SOFTMAX, whose fixed 1/256 output scale holds
  MiT-B0 @512 at 0.9888: `int8` / `int8_io` trace it as exp * rsqrt(
  sum)^2 (`integer_softmax`, 0.9970 in 386 ops, integer-only), which
  OpenVINO's NPU plugin takes whole but QNN's HTP (QAIRT 2.51) does not
  (int8 EXP stays on the CPU).
- `gpu`: float16 weights, and the TFLite Analyzer's GPU check must pass.

A TOML recipe (see export/*.toml):

    [model]
    preset = "mit_b0"         # or a checkpoint folder, relative to the file
    random_weights = true
    image_size = [256, 256]
    config = {}               # architecture overrides (optional)
    [export]
    modes = ["int8"]
    targets = ["cpu"]
    out = "../artifacts"
    float_layers = []         # node names kept in float (quant_debug)
    [calibration]
    source = "../calibration"
    max_images = 16
    [thresholds]              # minimum cosine per mode
    cpu = 0.999

`[[model]]` tables instead of one `[model]` export several models with the
same settings.
"""

import dataclasses
import os

from edge_backbones.errors import ExportError, InputError, require
from edge_backbones.export.options import RECIPE_KEYS, check, check_thresholds
from edge_backbones.runtime.cpuinfo import cpu_flags
from edge_backbones.text import split_commas

__all__ = [
    "FAST_INT8_CPU_FLAGS",
    "MIXED_FLOAT_LAYERS",
    "MIXED_FLOAT_OPS",
    "MIXED_RANGES",
    "Plan",
    "artifact_stem",
    "MODE_PLANS",
    "TARGETS",
    "cpu_plan",
    "resolve_plans",
    "check_graph",
    "load_recipe",
    "load_recipes",
]

MIXED_FLOAT_OPS = ("BATCH_MATMUL", "SOFTMAX", "GELU", "ADD")
# int8_mixed's activation ranges clip the rarest 0.01% of values on each
# side: the int8 FC/conv inputs then get a finer step (export/README.md,
# "Activation ranges")
MIXED_RANGES = "percentile:99.99"
# every op inside these layers stays float in int8_mixed
MIXED_FLOAT_LAYERS = ("EdgeLayerNormalization", "LayerNormalization")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one artifact is converted and what its graph must satisfy."""

    mode: str  # the artifact's name and the metadata's "mode"
    base: str  # fp32 | fp16 | dynamic | int8 | int16x8
    description: str
    recipe: str | None = None  # cpu | npu | gpu for target recipes
    integer_io: bool = False
    float_ops: tuple = ()
    float_layer_types: tuple = ()
    float_weight_ops: tuple = ()  # dynamic: ops whose weights stay float
    forbid_float_handoffs: bool = False
    forbid_float_tensors: bool = False
    require_gpu_compatible: bool = False
    reason: str = ""  # why this recipe (the cpu target's CPU check)
    # trace layer norms as L2_NORMALIZATION (models.layers.
    # integer_layer_norm): for graphs whose layer norms run in int8
    integer_layer_norm: bool = False
    # with integer_layer_norm: softmax as exp * rsqrt(sum)^2 too (not on
    # npu: QNN's HTP leaves int8 EXP on the CPU, splitting the graph)
    integer_softmax: bool = False
    # activation ranges of the int8 modes (export.calibration_ranges)
    ranges: str = "minmax"

    @property
    def calibrated(self):
        return self.base in ("int8", "int16x8")


MODE_PLANS = {
    "fp32": Plan("fp32", "fp32", "float32"),
    "fp16": Plan("fp16", "fp16", "float16 weights, float compute"),
    "dynamic": Plan("dynamic", "dynamic", "int8 weights, dynamic int8 FC"),
    "int8": Plan(
        "int8",
        "int8",
        "full int8, float I/O",
        integer_layer_norm=True,
        integer_softmax=True,
    ),
    "int8_io": Plan(
        "int8_io",
        "int8",
        "full int8, integer I/O",
        integer_io=True,
        integer_layer_norm=True,
        integer_softmax=True,
    ),
    "int16x8": Plan("int16x8", "int16x8", "int16 activations, int8 weights"),
    "int8_mixed": Plan(
        "int8_mixed",
        "int8",
        "int8 conv/FC; float attention, softmax, GELU, adds, layer norms",
        float_ops=MIXED_FLOAT_OPS,
        float_layer_types=MIXED_FLOAT_LAYERS,
        ranges=MIXED_RANGES,
    ),
}

TARGETS = {
    "cpu": Plan(
        "cpu",
        "dynamic",
        "int8 weights, XNNPACK dynamic int8 FC/conv, float depthwise",
        recipe="cpu",
        float_weight_ops=("DEPTHWISE_CONV_2D",),
    ),
    "npu": Plan(
        "npu",
        "int8",
        "full int8, integer I/O, L2_NORMALIZATION layer norms, no float "
        "tensor or float (de)quantize",
        recipe="npu",
        integer_io=True,
        forbid_float_handoffs=True,
        forbid_float_tensors=True,
        integer_layer_norm=True,
    ),
    "gpu": Plan(
        "gpu",
        "fp16",
        "float16 weights, GPU-compatible graph",
        recipe="gpu",
        require_gpu_compatible=True,
    ),
}


# /proc/cpuinfo flags of int8 dot-product instructions XNNPACK's dynamic
# int8 (QD8) kernels use: x86 AVX-512 VNNI, AVX-VNNI, AMX; ARM dotprod,
# i8mm
FAST_INT8_CPU_FLAGS = (
    "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm",
)  # fmt: skip


def cpu_plan(flags=None):
    """The `cpu` target's plan for a CPU with `flags` (default: this one).

    Dynamic-range int8 where the CPU has an int8 dot product
    (`FAST_INT8_CPU_FLAGS`), float16 weights elsewhere; the plan's
    `reason` names the flags that decided, for the metadata.
    """
    import platform

    if flags is None:
        flags = cpu_flags()
    machine = platform.machine() or "unknown machine"
    if flags is None:
        found, known = [], "its flags are unknown (no /proc/cpuinfo)"
    else:
        found = sorted(set(flags) & set(FAST_INT8_CPU_FLAGS))
        known = f"{machine} flags include " + ", ".join(found or ["none"])
        known += f" of {list(FAST_INT8_CPU_FLAGS)}"
    if found:
        return dataclasses.replace(
            TARGETS["cpu"],
            reason=f"dynamic int8: the CPU has int8 dot products ({known})",
        )
    return dataclasses.replace(
        TARGETS["cpu"],
        base="fp16",
        description="float16 weights, float compute (no fast int8 here)",
        float_weight_ops=(),
        reason=(
            "float16 weights: no int8 dot product on this CPU, where "
            f"dynamic int8 runs slower than fp32 ({known})"
        ),
    )


def artifact_stem(name, size, mode=None):
    """`mit_b0_512x512_int8`: the one file-name rule for the export's
    artifacts (`.tflite`, `.json`) and the report that finds them; without
    `mode`, the stem of the per-size files (`_layers.csv`)."""
    stem = f"{name}_{size[0]}x{size[1]}"
    return f"{stem}_{mode}" if mode else stem


def resolve_plans(modes, targets):
    """The plans for `modes` + `targets` (lists or comma-separated)."""
    plans = []
    for name in split_commas(modes):
        if name == "cpu":
            plans.append(cpu_plan())
        elif name in TARGETS:
            plans.append(TARGETS[name])
        elif name in MODE_PLANS:
            plans.append(MODE_PLANS[name])
        else:
            raise InputError(
                f"Unknown mode {name!r}; modes are {list(MODE_PLANS)} and "
                f"targets are {list(TARGETS)}."
            )
    for name in split_commas(targets):
        if name not in TARGETS:
            raise InputError(
                f"Unknown target {name!r}; targets are {list(TARGETS)}."
            )
        plans.append(cpu_plan() if name == "cpu" else TARGETS[name])
    unique = list(dict.fromkeys(plans))
    if not unique:
        raise InputError(
            "Nothing to export: give modes (e.g. fp32,int8) and/or targets "
            "(cpu, npu, gpu)."
        )
    return unique


def check_graph(plan, content, gpu_compatible, gpu_warnings):
    """Raises ExportError if the converted graph breaks the plan's rules."""
    from edge_backbones.runtime.model_file import read_model_file

    parsed = read_model_file(content)
    found = {op: n for op, n in parsed.op_histogram.items()}
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


def _tomllib():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = require("tomli", "export")
    return tomllib


def _check_table(path, section, table, kinds):
    """Unknown keys and values of the wrong type are InputErrors."""
    where = f"Recipe {os.fspath(path)!r}: [{section}] "
    if kinds is None:  # [thresholds]: any mode, each a cosine
        check_thresholds(table, where)
        return
    unknown = sorted(set(table) - set(kinds))
    if unknown:
        raise InputError(
            f"Recipe {path!r}: unknown key(s) {unknown} in "
            f"[{section}]; known: {sorted(kinds)}."
        )
    for key, value in table.items():
        check(kinds[key], value, key, where)


def load_recipe(path):
    """A TOML recipe with one [model] -> keyword arguments of `export()`."""
    exports = load_recipes(path)
    if len(exports) != 1:
        raise InputError(
            f"Recipe {path!r} lists {len(exports)} models; use "
            "load_recipes() for one export() call per model."
        )
    return exports[0]


def load_recipes(path):
    """A TOML recipe -> one dict of `export()` keyword arguments per model.

    `[model]` is one model; `[[model]]` tables list several that share the
    other sections. Paths in it (a checkpoint folder, `out`, the calibration
    source) are relative to the recipe file, so a recipe works from any
    directory.
    """
    tomllib = _tomllib()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise InputError(f"No recipe file at {path!r}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"Recipe {path!r} is not valid TOML: {exc}") from exc
    models = data.get("model", {})
    models = models if isinstance(models, list) else [models]
    for section, value in data.items():
        if section not in RECIPE_KEYS:
            raise InputError(
                f"Recipe {path!r}: unknown section [{section}]; sections "
                f"are {sorted(RECIPE_KEYS)}."
            )
        allowed = RECIPE_KEYS[section]
        tables = value if isinstance(value, list) else [value]
        if (
            not tables
            or (isinstance(value, list) and section != "model")
            or not all(isinstance(table, dict) for table in tables)
        ):
            raise InputError(
                f"Recipe {path!r}: [{section}] must be a table"
                + (" (or [[model]] tables)" if section == "model" else "")
                + f"; got {value!r}. See export/README.md for the layout."
            )
        for table in tables:
            _check_table(path, section, table, allowed)
    base = os.path.dirname(os.path.abspath(path))

    def local(value):
        return os.path.normpath(os.path.join(base, value))

    shared = dict(data.get("export", {}))
    if "out" in shared:
        shared["out"] = local(shared["out"])
    calibration = data.get("calibration", {})
    if "source" in calibration:
        shared["calibration"] = local(calibration["source"])
    for key in ("max_images", "holdout_fraction", "seed"):
        if key in calibration:
            shared[key] = calibration[key]
    if data.get("thresholds"):
        shared["thresholds"] = dict(data["thresholds"])
    exports = []
    for model in models:
        if "preset" not in model:
            raise InputError(
                f"Recipe {path!r}: a [model] has no preset (a preset name "
                "or a checkpoint folder)."
            )
        preset = model["preset"]
        if os.path.isdir(local(preset)):  # a folder beside the recipe
            preset = local(preset)
        if "config" in model and not (
            model.get("name") and model.get("random_weights")
        ):
            raise InputError(
                f"Recipe {path!r}: the [model] {preset!r} overrides its "
                "architecture (config = ...), so no checkpoint fits it: give"
                " it a name and random_weights = true."
            )
        kwargs = {"model": preset}
        for key in ("random_weights", "image_size", "name", "config"):
            if key in model:
                kwargs[key] = model[key]
        exports.append({**kwargs, **shared})
    return exports
