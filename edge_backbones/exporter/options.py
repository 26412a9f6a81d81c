"""Every export option: its type, default and TOML table, in one table.

`OPTIONS` serves both faces of an export: the keyword arguments of
`export()` and the keys of a TOML job (`recipes.load_recipes`), whose
tables group them as `ExportJob` does: [model], [export], [calibration],
[thresholds]. `job()` turns either into frozen option objects, checked
before any work: an unknown name is an UnknownOptionError that suggests
the closest one; a wrong type is an InputError that names the option, the
value received, its type and what is expected; nothing is coerced (a
quoted "false" is not false).
"""

import dataclasses
import inspect
import numbers
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from edge_backbones.core.suggest import did_you_mean
from edge_backbones.errors import InputError, UnknownOptionError

if TYPE_CHECKING:
    from edge_backbones.core.image_sets import CalibrationSet

__all__ = [
    "parse_image_size",
    "Kind",
    "Option",
    "OPTIONS",
    "EXPORT_OPTIONS",
    "RECIPE_KEYS",
    "ModelOptions",
    "ExportOptions",
    "CalibrationOptions",
    "ExportJob",
    "check",
    "check_names",
    "check_thresholds",
    "job",
    "signature",
    "ExportKwargs",
]

# a path as export() takes it
PathLike = str | os.PathLike[str]
# one name, "a,b" or a list of names
Names = str | Sequence[str]


class ExportKwargs(TypedDict, total=False):
    """`export()`'s keyword options and the types each takes (None keeps
    the default); what an editor completes after `export(model, ...)`.
    `OPTIONS` checks the values at run time; the two list the same keys."""

    image_size: int | str | Sequence[int] | None
    modes: Names | None
    targets: Names | None
    calibration: "PathLike | CalibrationSet | None"
    out: PathLike | None
    random_weights: bool | None
    thresholds: Mapping[str, float] | None
    min_cos: float | None
    budget: str | Mapping[str, float] | None
    float_layers: Names | None
    pixels_in_graph: bool | None
    io_dtype: str | None
    out_features: Names | None
    max_images: int | None
    holdout_fraction: float | None
    seed: int | None
    allow_flex: bool | None
    num_threads: int | None
    bench_runs: int | None
    layer_report: bool | None
    name: str | None
    config: Mapping[str, Any] | None
    socs: Names | None
    task: str | None  # "backbone" | "segmentation"
    mask_thresholds: Mapping[str, float] | None
    work_dir: PathLike | None


@dataclasses.dataclass(frozen=True)
class Kind:
    """What an option accepts: a description, an example and a test."""

    expected: str
    example: str
    accepts: Callable[[Any], bool]


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _names(value: object) -> bool:
    return isinstance(value, str) or (
        isinstance(value, (list, tuple))
        and all(isinstance(v, str) for v in value)
    )


def _size(value):
    if isinstance(value, str) or _integer(value):
        return True
    return isinstance(value, (list, tuple)) and all(map(_integer, value))


def _cosine(value):
    # `0 < v <= 1` is False for NaN as well
    return _real(value) and 0 < value <= 1


def _thresholds(value):
    return isinstance(value, dict) and all(
        isinstance(k, str) and _cosine(v) for k, v in value.items()
    )


BOOLEAN = Kind(
    "a boolean", "true or false, without quotes", lambda v: isinstance(v, bool)
)
TEXT = Kind("a string", '"mit_b0"', lambda v: isinstance(v, str))
PATH = Kind(
    "a path (a string)",
    '"artifacts"',
    lambda v: isinstance(v, (str, os.PathLike)),
)
NAMES = Kind(
    "a list of names or one comma-separated string",
    '["fp32", "int8"] or "fp32,int8"',
    _names,
)
SIZE = Kind(
    "an image size",
    '512, "384x640" or [384, 640]',
    _size,
)
TABLE = Kind(
    "a table (dict)", "{ hidden_size = 64 }", lambda v: isinstance(v, dict)
)
COUNT = Kind("a positive integer", "16", lambda v: _integer(v) and v >= 1)
SEED = Kind("a non-negative integer", "0", lambda v: _integer(v) and v >= 0)
FRACTION = Kind("a number in [0, 1)", "0.25", lambda v: _real(v) and 0 <= v < 1)
COSINE = Kind(
    "a minimum cosine in (0, 1]",
    "0.999",
    _cosine,
)
THRESHOLDS = Kind(
    "a table of mode = minimum cosine in (0, 1]",
    "{ int8 = 0.98 }",
    _thresholds,
)

BUDGET = Kind(
    "a budget: 'min_cos=..,max_ms=..,max_mb=..' or a table of those keys",
    '"min_cos=0.999,max_ms=40" or { min_cos = 0.999, max_mb = 5 }',
    lambda v: isinstance(v, (str, dict)),
)

MASK_THRESHOLDS = Kind(
    "a table of mode = minimum mask agreement in (0, 1]",
    "{ int8 = 0.97 }",
    _thresholds,
)


def _model(value):
    from edge_backbones.exporter.foreign_model import is_foreign
    from edge_backbones.models.backbone import Backbone

    return isinstance(value, (str, os.PathLike, Backbone)) or is_foreign(value)


MODEL = Kind(
    "a preset name, a checkpoint folder, a Backbone or a Keras / tf-keras "
    "model",
    '"mit_b0"',
    _model,
)
CALIBRATION = Kind(
    "a folder of photos or a CalibrationSet",
    '"calibration/"',
    lambda v: isinstance(v, (str, os.PathLike)) or hasattr(v, "arrays"),
)


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """[model]: what to build and at which size."""

    model: object  # a preset name, a folder, a Backbone or a Keras model
    # int, "HxW" or (H, W); None: the preset's natural size
    image_size: int | str | Sequence[int] | None = None
    random_weights: bool = False
    name: str | None = None
    config: dict[str, Any] | None = None
    # "backbone" | "segmentation"; None: what the checkpoint holds
    task: str | None = None


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """[export]: which artifacts, where, and how they are checked."""

    modes: Names | None = None
    targets: Names = ()
    out: PathLike = "artifacts"
    min_cos: float | None = None
    # per-layer precision of one int8 mode against "min_cos=..,max_ms=..,
    # max_mb=.." (exporter.budget)
    budget: str | dict[str, float] | None = None
    float_layers: Names = ()
    pixels_in_graph: bool = False
    io_dtype: str = "int8"
    out_features: Names | None = None
    allow_flex: bool = False
    num_threads: int = 2
    bench_runs: int = 20
    layer_report: bool = False
    socs: Names | None = None
    # SavedModels and candidates go here (None: a work folder in `out`)
    work_dir: str | None = None
    # segmenters: {mode: minimum mask agreement}, over the registry's
    mask_thresholds: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class CalibrationOptions:
    """[calibration]: the photos that calibrate and verify."""

    # TOML: source
    calibration: "PathLike | CalibrationSet | None" = None
    max_images: int = 32
    holdout_fraction: float = 0.25
    seed: int = 0  # also seeds random weights


@dataclasses.dataclass(frozen=True)
class Option:
    """One export option: its TOML table, type and TOML key."""

    table: str  # model | export | calibration | thresholds
    kind: Kind
    toml_key: str | None = ""  # "": the keyword's name; None: no TOML key
    toml_kind: Kind | None = None  # in TOML, if not `kind`


# keyword of export() -> Option, in the order of export()'s signature; the
# defaults are the option groups' (None, as a value, keeps the default)
OPTIONS = {
    "model": Option("model", MODEL, "preset", TEXT),
    "image_size": Option("model", SIZE),
    "modes": Option("export", NAMES),
    "targets": Option("export", NAMES),
    "calibration": Option("calibration", CALIBRATION, "source", TEXT),
    "out": Option("export", PATH, "", TEXT),
    "random_weights": Option("model", BOOLEAN),
    "thresholds": Option("thresholds", THRESHOLDS),
    "min_cos": Option("export", COSINE),
    "budget": Option("export", BUDGET),
    "float_layers": Option("export", NAMES),
    "pixels_in_graph": Option("export", BOOLEAN),
    "io_dtype": Option("export", TEXT),
    "out_features": Option("export", NAMES),
    "max_images": Option("calibration", COUNT),
    "holdout_fraction": Option("calibration", FRACTION),
    "seed": Option("calibration", SEED),
    "allow_flex": Option("export", BOOLEAN),
    "num_threads": Option("export", COUNT),
    "bench_runs": Option("export", COUNT, None),
    "layer_report": Option("export", BOOLEAN, None),
    "name": Option("model", TEXT),
    "config": Option("model", TABLE),
    "task": Option("model", TEXT),
    "socs": Option("export", NAMES),
    "work_dir": Option("export", PATH, "", TEXT),
    "mask_thresholds": Option("export", MASK_THRESHOLDS),
}

# every option of export() -> its kind
EXPORT_OPTIONS = {key: option.kind for key, option in OPTIONS.items()}


def _recipe_keys():
    sections = {"model": {}, "export": {}, "calibration": {}}
    for key, option in OPTIONS.items():
        if option.table in sections and option.toml_key is not None:
            kind = option.toml_kind or option.kind
            sections[option.table][option.toml_key or key] = kind
    return {**sections, "thresholds": None}


# recipe section -> key -> kind ([thresholds]: every key a cosine)
RECIPE_KEYS = _recipe_keys()


def check(kind: Kind, value: object, key: str, where: str = "") -> None:
    """InputError unless `value` is of `kind`; names `where` + `key`.

    Raises:
        InputError: `value` is not of `kind`.
    """
    if kind.accepts(value):
        return
    raise InputError(
        f"{where}{key} = {value!r} ({type(value).__name__}) is not "
        f"{kind.expected}; give e.g. {key} = {kind.example}."
    )


def check_thresholds(thresholds: Any, where: str = "") -> None:
    """Each threshold a minimum cosine in (0, 1], named when it is not.

    Raises:
        InputError: not a table, or a value outside (0, 1].
    """
    check(TABLE, thresholds, "thresholds", where)
    for mode, value in thresholds.items():
        check(COSINE, value, f"thresholds.{mode}", where)


def check_names(
    given: Iterable[str], known: Iterable[str], what: str, where: str = ""
) -> None:
    """UnknownOptionError for a name of `given` not in `known`, with the
    closest known one as the fix.

    Raises:
        UnknownOptionError: a name of `given` that `known` lacks.
    """
    for name in given:
        if name not in known:
            raise UnknownOptionError(
                f"{where}unknown {what} {name!r}{did_you_mean(name, known)}; "
                f"known: {sorted(known)}."
            )


def _group(cls, values):
    """The option group `cls` of `values` (absent names: its defaults)."""
    return cls(
        **{
            field.name: values[field.name]
            for field in dataclasses.fields(cls)
            if field.name in values
        }
    )


def _default(key):
    groups = (ModelOptions, ExportOptions, CalibrationOptions)
    for field in (f for group in groups for f in dataclasses.fields(group)):
        if field.name == key:
            required = field.default is dataclasses.MISSING
            return inspect.Parameter.empty if required else field.default
    return None  # thresholds


@dataclasses.dataclass(frozen=True)
class ExportJob:
    """One export, as `export()`'s keywords or a TOML job give it."""

    model: ModelOptions
    export: ExportOptions
    calibration: CalibrationOptions
    thresholds: dict[str, float] | None = None  # [thresholds]: mode -> cosine

    def replace(self, **values: Any) -> "ExportJob":
        """This job with keyword options `values` changed (checked).

        Raises:
            UnknownOptionError, InputError: as `job` raises them.
        """
        return job({**self.as_kwargs(), **values})

    def as_kwargs(self) -> dict[str, Any]:
        """The `export()` keyword arguments of this job."""
        values = {"thresholds": self.thresholds}
        for group in (self.model, self.export, self.calibration):
            values.update(
                {
                    f.name: getattr(group, f.name)
                    for f in dataclasses.fields(group)
                }
            )
        return values


def job(values: Mapping[str, Any], where: str = "") -> ExportJob:
    """The ExportJob of `export()` keyword arguments `values` (a dict).

    Every name must be an option (UnknownOptionError suggests the closest
    one) and every value of its type (InputError); None keeps a default.

    Raises:
        UnknownOptionError: a name that is no option.
        InputError: no model, or a value of the wrong type.
    """
    check_names(values, OPTIONS, "export option", where)
    if "model" not in values:
        raise InputError(
            f"{where}no model: give a preset name, a checkpoint folder or a"
            ' model, e.g. model = "mit_b0".'
        )
    for key, value in values.items():
        if value is None and key != "model":
            continue
        if OPTIONS[key].kind is THRESHOLDS:
            check_thresholds(value, where)
        else:
            check(OPTIONS[key].kind, value, key, where)
    given = {k: v for k, v in values.items() if v is not None or k == "model"}
    return ExportJob(
        model=_group(ModelOptions, given),
        export=_group(ExportOptions, given),
        calibration=_group(CalibrationOptions, given),
        thresholds=values.get("thresholds"),
    )


def signature() -> inspect.Signature:
    """`export()`'s signature: every option, keyword, with its default."""
    return inspect.Signature(
        [
            inspect.Parameter(
                key,
                inspect.Parameter.POSITIONAL_OR_KEYWORD
                if key == "model"
                else inspect.Parameter.KEYWORD_ONLY,
                default=_default(key),
            )
            for key in OPTIONS
        ]
    )


def parse_image_size(value: Any) -> tuple[int, int]:
    """512, "512", "384x640", (384, 640) -> (height, width).

    Raises:
        InputError: not a size, or one that is not positive.
    """
    parts: list[Any]
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
