"""The mode registry (`modes.toml`): quantization schemes as data.

A scheme is named by its numerics (`wi8_ai8`: int8 weights, int8
activations) and says how to convert and what fidelity gate to pass. The
names users type (`fp32`, `int8`, `cpu`, ...) are aliases of schemes in
the same file, some adding a device's graph checks. Every list of modes
in the package (`MODE_PLANS`, `TARGETS`, the gates, the `min_cos`
candidates, the report's row order, the CLI's help) is derived from it,
so a new entry in the file is a new mode everywhere.

Light: TOML and dataclasses only (the report imports it on a device that
has no TensorFlow).
"""

import dataclasses
import functools
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from edge_backbones.core.cpuinfo import cpu_flags
from edge_backbones.errors import ExportError, InputError
from edge_backbones.text import split_commas

__all__ = [
    "FAST_INT8_CPU_FLAGS",
    "MODE_PLANS",
    "TARGETS",
    "Plan",
    "Registry",
    "REGISTRY_PATH",
    "registry",
    "load_registry",
    "mode_plans",
    "target_plans",
    "npu_targets",
    "names",
    "float_modes",
    "integer_only_modes",
    "default_min_cosine",
    "default_min_mask_agreement",
    "selection_candidates",
    "fast_int8_cpu_flags",
    "cpu_plan",
    "resolve_plans",
    "SamDecoderPlan",
    "sam_decoder_plans",
    "segmenter_float_lists",
]

REGISTRY_PATH = os.path.join(os.path.dirname(__file__), "modes.toml")
# what each scheme may set (and its default); aliases may also set the
# device checks, a description and a gate
_SCHEME_KEYS: dict[str, Any] = {
    "description": "",
    "converter": None,
    "io": "float32",
    "float_ops": (),
    "float_layer_types": (),
    "float_layer_names": (),
    "float_weight_ops": (),
    "integer_layer_norm": False,
    "integer_softmax": False,
    "grouped_depthwise": False,
    "ranges": "minmax",
    "min_cosine": None,
    "min_mask_agreement": None,
}
_CHECKS = (
    "forbid_float_handoffs",
    "forbid_float_tensors",
    "require_gpu_compatible",
)
_ALIAS_KEYS = {
    "kind",
    "scheme",
    "description",
    "min_cosine",
    "min_mask_agreement",
    "by_cpu",
}
_CONVERTERS = ("fp32", "fp16", "dynamic", "int8", "int16x8")


@dataclasses.dataclass(frozen=True)
class Plan:
    """One user-facing name resolved to its scheme: how one artifact is
    converted and what its graph must satisfy."""

    mode: str  # the name used: the artifact's name and the metadata's "mode"
    scheme: str  # the registry's scheme, named by its numerics
    converter: str  # fp32 | fp16 | dynamic | int8 | int16x8
    description: str
    min_cosine: float
    target: str | None = None  # cpu | npu | gpu for device targets
    integer_io: bool = False
    float_ops: tuple[str, ...] = ()
    float_layer_types: tuple[str, ...] = ()
    # glob patterns of Keras layer paths whose ops stay float (int8 only)
    float_layer_names: tuple[str, ...] = ()
    float_weight_ops: tuple[str, ...] = ()  # dynamic: weights stay float
    forbid_float_handoffs: bool = False
    forbid_float_tensors: bool = False
    require_gpu_compatible: bool = False
    reason: str = ""  # why this scheme (the cpu target's CPU check)
    # trace layer norms as L2_NORMALIZATION (models.layers.
    # integer_layer_norm): for graphs whose layer norms run in int8
    integer_layer_norm: bool = False
    # with integer_layer_norm: softmax as exp * rsqrt(sum)^2
    # (models.layers.integer_softmax), calibrated instead of int8
    # SOFTMAX's fixed 1/256 output scale
    integer_softmax: bool = False
    # depthwise convolutions as grouped CONV_2D (export.grouped_depthwise):
    # for NPUs without an int16 depthwise kernel
    grouped_depthwise: bool = False
    # activation ranges of the int8 modes (export.calibration_ranges)
    ranges: str = "minmax"
    # segmenters: the least share of pixels whose class matches the float
    # model's, on the worst held-out photo (None: not gated)
    min_mask_agreement: float | None = None

    @property
    def needs_calibration(self) -> bool:
        """True if the converter quantizes activations from photos."""
        return self.converter in ("int8", "int16x8")

    def as_metadata(self) -> dict[str, Any]:
        """The resolved scheme, as the artifact's metadata records it."""
        return {
            "name": self.scheme,
            "alias": self.mode,
            "kind": "target" if self.target else "mode",
            "converter": self.converter,
            "io": "integer" if self.integer_io else "float32",
            "float_ops": list(self.float_ops),
            "float_layer_types": list(self.float_layer_types),
            "float_layer_names": list(self.float_layer_names),
            "float_weight_ops": list(self.float_weight_ops),
            "integer_layer_norm": self.integer_layer_norm,
            "integer_softmax": self.integer_softmax,
            "grouped_depthwise": self.grouped_depthwise,
            "ranges": self.ranges,
            "checks": [c for c in _CHECKS if getattr(self, c)],
        }


def _fail(where: str, problem: str) -> NoReturn:
    raise ExportError(
        f"The mode registry (modes.toml): {where} {problem}. The package's "
        f"own ({REGISTRY_PATH}) ships with it: reinstall edge_backbones, or "
        "fix the edit."
    )


def _scheme_plan(name: str, table: Mapping[str, Any]) -> Plan:
    unknown = sorted(set(table) - set(_SCHEME_KEYS))
    if unknown:
        _fail(f"[schemes.{name}]", f"has unknown key(s) {unknown}")
    fields = {**_SCHEME_KEYS, **table}
    if fields["converter"] not in _CONVERTERS:
        _fail(f"[schemes.{name}]", f"converter must be one of {_CONVERTERS}")
    if fields["io"] not in ("float32", "integer"):
        _fail(f"[schemes.{name}]", 'io must be "float32" or "integer"')
    return Plan(
        mode=name,
        scheme=name,
        converter=fields["converter"],
        description=fields["description"],
        min_cosine=fields["min_cosine"],
        integer_io=fields["io"] == "integer",
        float_ops=tuple(fields["float_ops"]),
        float_layer_types=tuple(fields["float_layer_types"]),
        float_layer_names=tuple(fields["float_layer_names"]),
        float_weight_ops=tuple(fields["float_weight_ops"]),
        integer_layer_norm=fields["integer_layer_norm"],
        integer_softmax=fields["integer_softmax"],
        grouped_depthwise=fields["grouped_depthwise"],
        ranges=fields["ranges"],
        min_mask_agreement=fields["min_mask_agreement"],
    )


def _alias_plan(
    name: str,
    table: Mapping[str, Any],
    schemes: Mapping[str, Plan],
    scheme_name: str | None = None,
) -> Plan:
    """The Plan of alias `name` over `scheme_name` (default: its own)."""
    unknown = sorted(set(table) - _ALIAS_KEYS - set(_CHECKS))
    if unknown:
        _fail(f"[aliases.{name}]", f"has unknown key(s) {unknown}")
    if table.get("kind") not in ("mode", "target"):
        _fail(f"[aliases.{name}]", 'needs kind = "mode" or "target"')
    scheme_name = scheme_name or table.get("scheme")
    if not isinstance(scheme_name, str) or scheme_name not in schemes:
        _fail(f"[aliases.{name}]", f"names no scheme ({scheme_name!r})")
    scheme = schemes[scheme_name]
    gate = table.get("min_cosine", scheme.min_cosine)
    if not (isinstance(gate, float) and 0 < gate <= 1):
        _fail(f"[aliases.{name}]", f"has no min_cosine in (0, 1] ({gate!r})")
    return dataclasses.replace(
        scheme,
        mode=name,
        description=table.get("description", scheme.description),
        min_cosine=gate,
        min_mask_agreement=table.get(
            "min_mask_agreement", scheme.min_mask_agreement
        ),
        target=name if table["kind"] == "target" else None,
        **{check: table.get(check, False) for check in _CHECKS},
    )


@dataclasses.dataclass(frozen=True)
class Registry:
    """The parsed registry: schemes, aliases (in report order), choices."""

    schemes: dict[str, Plan]  # scheme name -> Plan (mode = the scheme's)
    aliases: dict[str, Plan]  # alias name -> Plan
    # alias name -> its table as written (by_cpu: a choice)
    tables: dict[str, dict[str, Any]]
    select: tuple[str, ...]  # what min_cos chooses among by default
    # alias name -> its [sam_decoder.*] table, checked (registry order)
    sam_decoder: dict[str, dict[str, Any]] = dataclasses.field(
        default_factory=dict
    )
    # alias name -> its [segmenter.*] table, checked
    segmenter: dict[str, dict[str, Any]] = dataclasses.field(
        default_factory=dict
    )


@dataclasses.dataclass(frozen=True)
class SamDecoderPlan:
    """How the SAM mask decoder is converted in one mode and what its
    masks must reach: the alias's plan with the decoder's float lists."""

    plan: Plan
    min_mean_mask_iou: float
    min_worst_mask_iou: float
    max_iou_prediction_error: float
    # decoder outputs whose producing ops stay float (int8 only)
    float_outputs: tuple[str, ...] = ()

    @property
    def mode(self) -> str:
        """The alias name (the artifact's and the metadata's mode)."""
        return self.plan.mode

    def gate(self) -> dict[str, float]:
        """The three gates, as the artifact's metadata records them."""
        return {
            "min_mean_mask_iou": self.min_mean_mask_iou,
            "min_worst_mask_iou": self.min_worst_mask_iou,
            "max_iou_prediction_error": self.max_iou_prediction_error,
        }


_SAM_DECODER_FLOATS = (
    "float_ops",
    "float_layer_types",
    "float_layer_names",
    "float_weight_ops",
)
_SAM_DECODER_GATES = (
    "min_mean_mask_iou",
    "min_worst_mask_iou",
    "max_iou_prediction_error",
)


def _model_table(
    kind: str,
    name: str,
    table: Mapping[str, Any],
    aliases: Mapping[str, Plan],
    allowed: Iterable[str],
) -> str:
    """Checks what every per-model table shares (it names an alias, its
    keys are known); returns its `[kind.name]` for further messages."""
    where = f"[{kind}.{name}]"
    if name not in aliases:
        _fail(where, "names no alias")
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        _fail(where, f"has unknown key(s) {unknown}")
    return where


def _sam_decoder_tables(
    data: Mapping[str, Any], aliases: Mapping[str, Plan]
) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    allowed = {
        *_SAM_DECODER_FLOATS,
        *_SAM_DECODER_GATES,
        "float_outputs",
        "ranges",
    }
    for name, table in data.get("sam_decoder", {}).items():
        where = _model_table("sam_decoder", name, table, aliases, allowed)
        for key in _SAM_DECODER_GATES:
            value = table.get(key)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                _fail(where, f"needs {key} in [0, 1] ({value!r})")
        tables[name] = dict(table)
    return tables


_SEGMENTER_KEYS = ("float_layer_names", "float_outputs")


def _segmenter_tables(
    data: Mapping[str, Any], aliases: Mapping[str, Plan]
) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for name, table in data.get("segmenter", {}).items():
        where = _model_table("segmenter", name, table, aliases, _SEGMENTER_KEYS)
        for key in _SEGMENTER_KEYS:
            value = table.get(key, [])
            if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value
            ):
                _fail(where, f"needs {key} as a list of strings ({value!r})")
        if aliases[name].converter != "int8":
            _fail(where, "float lists apply to int8 schemes only")
        tables[name] = dict(table)
    return tables


def _parse(data: Mapping[str, Any]) -> Registry:
    schemes = {
        name: _scheme_plan(name, table)
        for name, table in data.get("schemes", {}).items()
    }
    tables = data.get("aliases", {})
    aliases: dict[str, Plan] = {}
    for name, table in tables.items():
        choice = table.get("by_cpu")
        for key in ("with_flags", "without_flags") if choice else ():
            if choice.get(key) not in schemes:
                _fail(f"[aliases.{name}.by_cpu]", f"{key} names no scheme")
        default = choice["with_flags"] if choice else None
        aliases[name] = _alias_plan(name, table, schemes, default)
    select = tuple(data.get("select", ()))
    unknown = sorted(set(select) - set(aliases))
    if unknown:
        _fail("select", f"names unknown aliases {unknown}")
    sam_decoder = _sam_decoder_tables(data, aliases)
    segmenter = _segmenter_tables(data, aliases)
    return Registry(schemes, aliases, tables, select, sam_decoder, segmenter)


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """The registry in the TOML file `path`, checked.

    Raises:
        ExportError: the registry breaks its own rules.
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10: tomli is a core dependency there
        import tomli as tomllib  # type: ignore[no-redef]

    with open(path, "rb") as f:
        return _parse(tomllib.load(f))


@functools.cache
def registry() -> Registry:
    """The package's registry (`modes.toml`), parsed once."""
    return load_registry(REGISTRY_PATH)


def mode_plans() -> dict[str, Plan]:
    """{name: Plan} of the aliases of kind "mode", in registry order."""
    return {
        name: plan
        for name, plan in registry().aliases.items()
        if plan.target is None
    }


def target_plans() -> dict[str, Plan]:
    """{name: Plan} of the device targets, in registry order (cpu's plan
    is the one for a CPU with int8 dot products: see `cpu_plan`)."""
    return {
        name: plan
        for name, plan in registry().aliases.items()
        if plan.target is not None
    }


def npu_targets() -> tuple[str, ...]:
    """The targets whose graph must be integer end to end
    (`forbid_float_tensors`): the ones `--soc` compiles for an NPU."""
    return tuple(
        name
        for name, plan in target_plans().items()
        if plan.forbid_float_tensors
    )


def names() -> tuple[str, ...]:
    """Every name a user can type, in report order (fp32 first)."""
    return tuple(registry().aliases)


def float_modes() -> tuple[str, ...]:
    """The names whose kernels are float end to end (fp32 and fp16
    converters); every other name computes at least partly in integers."""
    return tuple(
        name
        for name, plan in registry().aliases.items()
        if plan.converter in ("fp32", "fp16")
    )


def integer_only_modes() -> tuple[str, ...]:
    """The names whose graph is int8 end to end: the int8 converter with
    no op, layer type or layer name left float."""
    return tuple(
        name
        for name, plan in registry().aliases.items()
        if plan.converter == "int8"
        and not (
            plan.float_ops or plan.float_layer_types or plan.float_layer_names
        )
    )


def default_min_mask_agreement() -> dict[str, float | None]:
    """{mode or target: its mask-agreement gate (None: ungated)}."""
    return {
        name: plan.min_mask_agreement
        for name, plan in registry().aliases.items()
    }


def default_min_cosine() -> dict[str, float]:
    """{name: its fidelity gate} for every mode and target."""
    return {name: plan.min_cosine for name, plan in registry().aliases.items()}


def selection_candidates() -> tuple[str, ...]:
    """What `export(min_cos=...)` chooses among when given no modes."""
    return registry().select


def fast_int8_cpu_flags(name: str = "cpu") -> tuple[str, ...]:
    """The /proc/cpuinfo flags that pick target `name`'s int8 scheme."""
    return tuple(registry().tables[name]["by_cpu"]["flags"])


def cpu_plan(flags: Iterable[str] | None = None, name: str = "cpu") -> Plan:
    """Target `name`'s plan for a CPU with `flags` (default: this one).

    The registry's `by_cpu` table picks its scheme: `with_flags` where the
    CPU has one of `flags` (int8 dot products, for XNNPACK's dynamic int8
    kernels), `without_flags` elsewhere; the plan's `reason` names the
    flags that decided, for the metadata.
    """
    table = registry().tables[name]
    wanted = table["by_cpu"]["flags"]
    if flags is None:
        flags = cpu_flags()
    machine = platform.machine() or "unknown machine"
    found: list[str]
    if flags is None:
        found, known = [], "its flags are unknown (no /proc/cpuinfo)"
    else:
        found = sorted(set(flags) & set(wanted))
        known = f"{machine} flags include " + ", ".join(found or ["none"])
        known += f" of {list(wanted)}"
    if found:
        scheme = table["by_cpu"]["with_flags"]
        reason = f"dynamic int8: the CPU has int8 dot products ({known})"
    else:
        scheme = table["by_cpu"]["without_flags"]
        reason = (
            "float16 weights: no int8 dot product on this CPU, where "
            f"dynamic int8 runs slower than fp32 ({known})"
        )
    plan = _alias_plan(name, table, registry().schemes, scheme)
    return dataclasses.replace(plan, reason=reason)


def _plan(name: str) -> Plan:
    if "by_cpu" in registry().tables[name]:
        return cpu_plan(name=name)
    return registry().aliases[name]


def resolve_plans(
    modes: str | Sequence[str] | None, targets: str | Sequence[str] | None
) -> list[Plan]:
    """The plans for `modes` + `targets` (lists or comma-separated).

    Raises:
        InputError: an unknown mode or target, or neither given.
    """
    aliases = registry().aliases
    plans = []
    for name in split_commas(modes):
        if name not in aliases:
            raise InputError(
                f"Unknown mode {name!r}; modes are {list(mode_plans())} and "
                f"targets are {list(target_plans())}."
            )
        plans.append(_plan(name))
    for name in split_commas(targets):
        if name not in target_plans():
            raise InputError(
                f"Unknown target {name!r}; targets are {list(target_plans())}."
            )
        plans.append(_plan(name))
    unique = list(dict.fromkeys(plans))
    if not unique:
        raise InputError(
            "Nothing to export: give modes (e.g. fp32,int8) and/or targets "
            f"({', '.join(target_plans())})."
        )
    return unique


def sam_decoder_plans(
    modes: str | Sequence[str] | None = None,
) -> dict[str, SamDecoderPlan]:
    """{mode: SamDecoderPlan} of the SAM decoder's modes (default: all
    the registry lists, in its order); `cpu` resolves for this CPU.

    Raises:
        InputError: a mode the decoder is not exported in.
    """
    tables = registry().sam_decoder
    wanted = split_commas(modes) if modes is not None else list(tables)
    unknown = [name for name in wanted if name not in tables]
    if unknown:
        raise InputError(
            f"The SAM decoder is not exported in {unknown}; its modes are "
            f"{list(tables)}."
        )
    plans = {}
    for name in wanted:
        table = tables[name]
        plan = dataclasses.replace(
            _plan(name),
            float_ops=tuple(table.get("float_ops", ())),
            float_layer_types=tuple(table.get("float_layer_types", ())),
            float_layer_names=tuple(table.get("float_layer_names", ())),
            float_weight_ops=tuple(table.get("float_weight_ops", ())),
            # the percentile and mse ranges read image inputs alone
            ranges=table.get("ranges", "minmax"),
        )
        plans[name] = SamDecoderPlan(
            plan,
            min_mean_mask_iou=float(table["min_mean_mask_iou"]),
            min_worst_mask_iou=float(table["min_worst_mask_iou"]),
            max_iou_prediction_error=float(table["max_iou_prediction_error"]),
            float_outputs=tuple(table.get("float_outputs", ())),
        )
    return plans


def segmenter_float_lists(mode: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(float layer names, float outputs) a segmenter keeps float in
    `mode` on top of its scheme's lists (the registry's [segmenter.*]
    table; empty where it has none): glob patterns of the segmenter's
    layer paths, and signature outputs (e.g. "logits") whose producing
    ops stay float."""
    table = registry().segmenter.get(mode, {})
    return (
        tuple(table.get("float_layer_names", ())),
        tuple(table.get("float_outputs", ())),
    )


# the registry's lists, as constants for callers that read them once
MODE_PLANS = mode_plans()  # name -> Plan, kind "mode"
TARGETS = target_plans()  # name -> Plan, kind "target"
# /proc/cpuinfo flags of int8 dot-product instructions XNNPACK's dynamic
# int8 (QD8) kernels use (the cpu target's scheme choice)
FAST_INT8_CPU_FLAGS = fast_int8_cpu_flags()
