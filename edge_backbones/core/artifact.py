"""The artifact metadata contract: typed, frozen, checked against one schema.

Every exported .tflite carries JSON (embedded under `edge_backbones` and as
the sidecar `<stem>.json`) that `artifact.schema.json` beside this module
describes; the Android app's `:core` checks the same file. `validate`
checks a dict against it (ArtifactSchemaError names the JSON path and the
schema file's version); `ArtifactMetadata.from_dict` validates and returns
the typed view, and `to_dict` gives back the very same dict.

A key the exporter writes only sometimes (`recipe_reason`, `task`,
`compiled`, the sidecar's `sha256`, ...) is `ABSENT` when missing, so that
absent and null stay distinct and the round trip is exact. Adding a field
is two lines: one in the dataclass below, one in the schema's object.

Imports nothing beyond the standard library: the runtime on a device reads
it with numpy and LiteRT only.
"""

import copy
import dataclasses
import functools
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any, TypeVar

from edge_backbones.core import json_schema
from edge_backbones.errors import ArtifactSchemaError

# what `validate` returns: the mapping it was given
_M = TypeVar("_M", bound=Mapping[str, Any])
# a record class's own type (typing.Self is 3.11+; core takes no
# typing_extensions)
_R = TypeVar("_R", bound="_Record")

__all__ = [
    "ABSENT",
    "ARTIFACT_SCHEMA_ID",
    "ARTIFACT_SCHEMA_VERSION",
    "SCHEMA",
    "SCHEMA_COMPILED",
    "TASK_KINDS",
    "ArtifactMetadata",
    "Compiled",
    "CompiledSource",
    "Fidelity",
    "Figures",
    "GpuRun",
    "Graph",
    "InputSpec",
    "LevelFigures",
    "ModelInfo",
    "Numerics",
    "OutputSpec",
    "Partition",
    "PerLayer",
    "Preprocessing",
    "Quantization",
    "Scheme",
    "Task",
    "VerifiedOn",
    "artifact_schema",
    "plain_scheme",
    "validate",
]

# the `schema` an exported artifact carries, and a compiled one's
SCHEMA = "edge_backbones.tflite/1"
SCHEMA_COMPILED = "edge_backbones.tflite/2"
# the version of artifact.schema.json (its `$id` ends with it)
ARTIFACT_SCHEMA_VERSION = 1
ARTIFACT_SCHEMA_ID = (
    "https://github.com/edge-backbones/edge_backbones/schemas/artifact/"
    f"{ARTIFACT_SCHEMA_VERSION}"
)
TASK_KINDS = ("backbone", "segmentation", "sam_encoder", "sam_decoder")
_SCHEMA_FILE = "artifact.schema.json"


class _Absent:
    """A key the JSON does not have (not the same as null)."""

    _instance = None

    def __new__(cls) -> "_Absent":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False

    def __deepcopy__(self, memo: object) -> "_Absent":
        return self


ABSENT = _Absent()


@functools.cache
def _schema_text() -> str:
    return (resources.files(__package__) / _SCHEMA_FILE).read_text("utf-8")


def artifact_schema() -> dict[str, Any]:
    """The parsed artifact.schema.json (a fresh copy)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@functools.cache
def _schema() -> dict[str, Any]:
    schema = artifact_schema()
    if schema.get("$id") != ARTIFACT_SCHEMA_ID:
        raise ArtifactSchemaError(
            f"{_SCHEMA_FILE} has $id {schema.get('$id')!r}, but this code "
            f"reads {ARTIFACT_SCHEMA_ID!r}: the package is half upgraded. "
            "Reinstall edge_backbones.",
            schema_version=ARTIFACT_SCHEMA_VERSION,
        )
    json_schema.check_schema(schema)
    return schema


def validate(metadata: _M, where: str = "the artifact metadata") -> _M:
    """Raises ArtifactSchemaError where `metadata` breaks the schema.

    `where` names the file or entry for the message ("the sidecar 'x.json'").
    Returns `metadata` itself.

    Raises:
        ArtifactSchemaError: the first field that breaks the schema.
    """
    problems = json_schema.errors(metadata, _schema())
    if not problems:
        return metadata
    field, problem = problems[0]
    more = ""
    if len(problems) > 1:
        rest = "; ".join(f"{f} {p}" for f, p in problems[1:4])
        more = f" (also: {rest}{'; ...' if len(problems) > 4 else ''})"
    raise ArtifactSchemaError(
        f"{where} breaks the artifact schema (version "
        f"{ARTIFACT_SCHEMA_VERSION}, {_SCHEMA_FILE}) at {field}: {problem}"
        f"{more}. Export the model again with this edge_backbones, or "
        "read it with the version that wrote it.",
        field=field,
        schema_version=ARTIFACT_SCHEMA_VERSION,
    )


# --- the typed view ---------------------------------------------------------


def _nested(cls: type, container: str | None = None) -> dict[str, Any]:
    """Field metadata: the value is a `cls` (or a dict/list of them)."""
    return {"nested": (cls, container)}


def _field(
    cls: type | None = None,
    container: str | None = None,
    optional: bool = False,
) -> Any:
    metadata = _nested(cls, container) if cls is not None else {}
    if optional:
        return dataclasses.field(default=ABSENT, metadata=metadata)
    return dataclasses.field(metadata=metadata)


class _Record:
    """from_dict / to_dict over the dataclass fields, in their order."""

    @classmethod
    def _from(cls: type[_R], data: Mapping[str, Any]) -> _R:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                values[f.name] = ABSENT
                continue
            values[f.name] = _load(data[f.name], f.metadata.get("nested"))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The JSON dict of this record (absent keys left out)."""
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is ABSENT:
                continue
            out[f.name] = _dump(value)
        return out


def _load(value: Any, nested: tuple[Any, str | None] | None) -> Any:
    if nested is None or value is None:
        return copy.deepcopy(value)
    cls, container = nested
    if container == "dict":
        return {k: cls._from(v) for k, v in value.items()}
    if container == "list":
        return tuple(cls._from(v) for v in value)
    return cls._from(value)


def _dump(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return value


_frozen = dataclasses.dataclass(frozen=True, kw_only=True)


@_frozen
class Quantization(_Record):
    """Affine: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int


@_frozen
class Preprocessing(_Record):
    """runtime/preprocess.py's spec; an ABSENT key takes its default."""

    color_order: str = _field(optional=True)
    resize: str = _field(optional=True)
    interpolation: str = _field(optional=True)
    pixels_in_graph: bool = _field(optional=True)
    scale: float = _field(optional=True)
    mean: list[Any] = _field(optional=True)
    std: list[Any] = _field(optional=True)


@_frozen
class InputSpec(_Record):
    name: str
    shape: list[Any]
    dtype: str  # numpy name: float32, int8, uint8, int16 (the npu target)
    quantization: Quantization | None = _field(Quantization)
    preprocessing: Preprocessing = _field(Preprocessing)


@_frozen
class OutputSpec(_Record):
    """One pyramid level (a SignatureDef output, by name)."""

    shape: list[Any]
    stride: int | None
    channels: int | None
    dtype: str
    quantization: Quantization | None = _field(Quantization)


# the name timm and the Kotlin app use for an output
LevelSpec = OutputSpec


@_frozen
class ModelInfo(_Record):
    name: str
    class_name: str
    config: dict[str, Any]
    weights: str | None
    params: int


@_frozen
class Task(_Record):
    """What the graph computes on top of (or instead of) the levels."""

    kind: str  # TASK_KINDS
    class_names: list[Any] = _field(optional=True)  # segmentation
    num_classes: int = _field(optional=True)  # segmentation
    # segmentation: where the class map is ("logits": their grid, "input")
    classes_at: str = _field(optional=True)
    # segmentation: False where the runtime computes `classes` from logits
    classes_in_graph: bool = _field(optional=True)
    # segmentation: the masks against the float model's on held-out photos
    verification: dict[str, Any] = _field(optional=True)
    # sam_encoder / sam_decoder: what ties a pair, and the decoder's layout
    checkpoint_sha256: str = _field(optional=True)
    image_size: list[Any] = _field(optional=True)
    embedding_shape: list[Any] = _field(optional=True)
    max_points: int = _field(optional=True)  # sam_decoder
    num_point_slots: int = _field(optional=True)  # sam_decoder
    mask_input_size: list[Any] = _field(optional=True)  # sam_decoder
    num_multimask_outputs: int = _field(optional=True)  # sam_decoder
    inputs: dict[str, Any] = _field(optional=True)  # sam_decoder
    prompt_verification: dict[str, Any] = _field(optional=True)  # sam_decoder


@_frozen
class FloatLayers(_Record):
    requested: list[Any]
    matched_nodes: list[Any]


@_frozen
class PerLayer(_Record):
    """A budget's per-layer precision choice (`exporter.budget`)."""

    # {min_cos, max_ms, max_mb}: each a number, or None where not given
    budget: dict[str, Any]
    choices: dict[str, Any]  # Keras layer path -> "int8" | "float32"
    float_layers: list[Any]  # the paths kept in float
    float_nodes: list[Any]  # their graph nodes
    search_log: str  # the search log's file name, beside the artifact


@_frozen
class Scheme(_Record):
    """The resolved numerics of the artifact (modes.toml)."""

    name: str
    alias: str
    kind: str  # "mode" or "target"
    converter: str
    io: str  # "float32" or "integer"
    float_ops: list[Any]
    float_layer_types: list[Any]
    float_layer_names: list[Any]
    float_weight_ops: list[Any]
    integer_layer_norm: bool
    integer_softmax: bool
    grouped_depthwise: bool
    ranges: str
    checks: list[Any]
    float_layers: FloatLayers = _field(FloatLayers)
    float_layer_type_nodes: list[Any] = _field()
    float_layer_name_nodes: list[Any] = _field()
    # with a budget: the layers it kept in float, and why
    per_layer: PerLayer = _field(PerLayer, optional=True)


@_frozen
class LevelFigures(_Record):
    cosine: float
    sqnr_db: float | None  # None on an exact match
    max_abs: float
    exact: bool = _field(optional=True)


@_frozen
class Figures(_Record):
    """`core.fidelity.compare`'s result."""

    images: int
    levels: dict[str, Any] = _field(LevelFigures, "dict")


@_frozen
class Fidelity(_Record):
    """The artifact vs the Keras model on held-out images, and its gate."""

    images: int
    levels: dict[str, Any] = _field(LevelFigures, "dict")
    # always written; exports older than the gate record lack them
    min_cosine: float = _field(optional=True)
    holdout: str = _field(optional=True)
    label: str = _field(optional=True)
    backend: str = _field(optional=True)


@_frozen
class Numerics(_Record):
    """A compiled model on the NPU's numerics vs its source on the CPU."""

    images: int
    levels: dict[str, Any] = _field(LevelFigures, "dict")
    label: str = _field()
    backend: str = _field()
    reference: str = _field()


@_frozen
class VerifiedOn(_Record):
    arch: str
    emulated: str | None
    runtime: str
    delegate: str | None


@_frozen
class GpuRun(_Record):
    status: str
    reason: str = _field(optional=True)
    device: str = _field(optional=True)
    software: bool = _field(optional=True)
    fully_delegated: bool = _field(optional=True)
    cosine: dict[str, Any] = _field(optional=True)


@_frozen
class Graph(_Record):
    op_count: int
    op_histogram: dict[str, Any]
    max_tensor_rank: int
    gpu_compatible: bool | None
    gpu_run: GpuRun = _field(GpuRun, optional=True)
    foreign_model: dict[str, Any] = _field(optional=True)


@_frozen
class Partition(_Record):
    subgraph: int
    ops_on_npu: int
    ops_total: int
    partitions: int


@_frozen
class CompiledSource(_Record):
    file: str
    sha256: str
    fidelity_cpu: Fidelity | None = _field(Fidelity)


@_frozen
class ReferenceKernels(_Record):
    vs_float: Figures = _field(Figures)
    vs_cpu: Figures = _field(Figures)


@_frozen
class Compiled(_Record):
    """What an ahead-of-time NPU compile adds (schema SCHEMA_COMPILED)."""

    soc: str
    vendor: str
    accelerator: str
    x86_run: str
    plugin: dict[str, Any]
    sdk: dict[str, Any]
    partitions: tuple[Any, ...] = _field(Partition, "list")
    cpu_op_kinds: dict[str, Any] = _field()
    compile_seconds: float = _field()
    source: CompiledSource = _field(CompiledSource)
    numerics_vs_cpu: Numerics = _field(Numerics, optional=True)
    cpu_reference_kernels: ReferenceKernels = _field(
        ReferenceKernels, optional=True
    )

    @property
    def ops_on_npu(self) -> int:
        return sum(p.ops_on_npu for p in self.partitions)

    @property
    def ops_total(self) -> int:
        return sum(p.ops_total for p in self.partitions)


_A = TypeVar("_A", bound="ArtifactMetadata")


@_frozen
class ArtifactMetadata(_Record):
    """The whole metadata of one artifact, in the order it is written."""

    content_sha256: str = _field(optional=True)
    schema: str = _field()
    model: ModelInfo = _field(ModelInfo)
    mode: str = _field()
    recipe: str | None = _field()
    recipe_reason: str = _field(optional=True)
    task: Task = _field(Task, optional=True)
    scheme: Scheme = _field(Scheme)
    input: InputSpec = _field(InputSpec)
    outputs: dict[str, Any] = _field(OutputSpec, "dict")
    fidelity: Fidelity | None = _field(Fidelity)
    verified_on: VerifiedOn = _field(VerifiedOn)
    graph: Graph = _field(Graph)
    versions: dict[str, Any] = _field()
    created: str = _field()
    compiled: Compiled = _field(Compiled, optional=True)
    sha256: str = _field(optional=True)  # sidecar only
    size_bytes: int = _field(optional=True)  # sidecar only

    @classmethod
    def from_dict(
        cls: type[_A],
        data: Mapping[str, Any],
        where: str = "the artifact metadata",
    ) -> _A:
        """The typed view of `data`, after checking it against the schema.

        Raises:
            ArtifactSchemaError: `data` breaks the schema.
        """
        validate(data, where)
        return cls._from(data)

    @property
    def is_compiled(self) -> bool:
        return self.schema == SCHEMA_COMPILED


def plain_scheme(
    name: str, alias: str, converter: str, io: str = "float32"
) -> dict[str, Any]:
    """The `scheme` block of a conversion with no float ops, layers or
    rewrites of ours (a stock converter run, a test's hand-made artifact)."""
    return {
        "name": name,
        "alias": alias,
        "kind": "mode",
        "converter": converter,
        "io": io,
        "float_ops": [],
        "float_layer_types": [],
        "float_layer_names": [],
        "float_weight_ops": [],
        "integer_layer_norm": False,
        "integer_softmax": False,
        "grouped_depthwise": False,
        "ranges": "minmax",
        "checks": [],
        "float_layers": {"requested": [], "matched_nodes": []},
        "float_layer_type_nodes": [],
        "float_layer_name_nodes": [],
    }
